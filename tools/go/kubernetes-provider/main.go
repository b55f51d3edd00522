// Command pulumi-resource-kubernetes is our build of the Kubernetes provider.
//
// Upstream's main.go embeds schema-embed.json and terraform-mapping-embed.json, which are
// generated at build time and therefore absent from the module zip. tools/toolchain.sh runs
// ./internal/genschema in a temporary copy of this module to write those two files (schema with
// its version field set, exactly as upstream's generate.go does) before `go build`.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

const providerName = "kubernetes"

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve(providerName, version.Version, pulumiSchema, terraformMapping)
}
