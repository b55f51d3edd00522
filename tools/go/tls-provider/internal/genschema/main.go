// Command genschema writes the Pulumi package schema of our tls plugin, using the bridge's
// plugin-framework tfgen exactly as upstream's `pulumi-tfgen-tls schema` does:
//
//	go run -ldflags "-X .../internal/tlsinfo.Version=5.3.0" ./internal/genschema OUTDIR UPSTREAMDIR
//
// writes OUTDIR/schema.json (version field set, as upstream's generate step does for the
// embedded copy) and OUTDIR/bridge-metadata.json. main.go embeds both. UPSTREAMDIR is the
// terraform-provider-tls module's directory in the module cache (`go list -m -f '{{.Dir}}'`):
// descriptions are converted from its docs/ folder. HCL examples are skipped (they would need
// the converter plugins and change nothing at runtime).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"kube-on-kube.local/toolchain/tls-provider/internal/tlsinfo"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: genschema OUTDIR UPSTREAMDIR")
		os.Exit(2)
	}
	outDir := os.Args[1]
	info := tlsinfo.Provider(nil)
	info.UpstreamRepoPath = os.Args[2]

	// tfgen's own command line: `schema --out OUTDIR`.
	os.Args = []string{os.Args[0], "schema", "--out", outDir, "--skip-examples"}
	pftfgen.Main("tls", info) // exits non-zero on failure

	if err := stampVersion(filepath.Join(outDir, "schema.json"), info.Version); err != nil {
		fmt.Fprintf(os.Stderr, "genschema: %v\n", err)
		os.Exit(1)
	}
}

// stampVersion sets the schema's top-level "version" (tfgen omits it on purpose) and keeps
// every other field as generated.
func stampVersion(path, version string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	v, _ := json.Marshal(version)
	spec["version"] = v
	out, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}
