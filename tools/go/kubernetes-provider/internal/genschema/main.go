// Command genschema writes schema-embed.json and terraform-mapping-embed.json for main.go.
//
// Usage: go run ./internal/genschema <provider module dir> <version> <output dir>
//
// It reads cmd/pulumi-resource-kubernetes/schema.json and terraform-mapping.json from the
// provider module in the module cache, sets the schema's version field (the engine and the SDKs
// read the package version from the schema) and re-serialises both files compactly.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: genschema <provider module dir> <version> <output dir>"))
	}
	moduleDir, version, outDir := os.Args[1], os.Args[2], os.Args[3]
	srcDir := filepath.Join(moduleDir, "cmd", "pulumi-resource-kubernetes")

	raw, err := os.ReadFile(filepath.Join(srcDir, "schema.json"))
	if err != nil {
		fail(err)
	}
	var spec schema.PackageSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		fail(fmt.Errorf("cannot deserialize schema: %w", err))
	}
	spec.Version = version
	writeJSON(filepath.Join(outDir, "schema-embed.json"), spec)

	raw, err = os.ReadFile(filepath.Join(srcDir, "terraform-mapping.json"))
	if err != nil {
		fail(err)
	}
	var mapping interface{}
	if err := json.Unmarshal(raw, &mapping); err != nil {
		fail(fmt.Errorf("cannot deserialize terraform mapping: %w", err))
	}
	writeJSON(filepath.Join(outDir, "terraform-mapping-embed.json"), mapping)
}

func writeJSON(path string, v interface{}) {
	data, err := json.Marshal(v)
	if err != nil {
		fail(fmt.Errorf("cannot serialize %s: %w", path, err))
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genschema:", err)
	os.Exit(1)
}
