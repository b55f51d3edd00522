// Command pulumi-resource-tls is our build of the Pulumi tls provider: the Terraform TLS provider
// (terraform-plugin-framework) bridged with pulumi-terraform-bridge's pf bridge.
//
// Upstream pulumi-tls cannot be fetched here (its module is not served), so the mapping lives in
// ./internal/tlsinfo and tools/toolchain.sh runs ./internal/genschema in a temporary copy of
// this module to write schema.json and bridge-metadata.json before `go build`.
package main

import (
	"context"
	_ "embed"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"kube-on-kube.local/toolchain/tls-provider/internal/tlsinfo"
)

//go:embed schema.json
var pulumiSchema []byte

//go:embed bridge-metadata.json
var bridgeMetadata []byte

func main() {
	info := tlsinfo.Provider(bridgeMetadata)
	pftfbridge.Main(context.Background(), "tls", info, pftfbridge.ProviderMetadata{PackageSchema: pulumiSchema})
}
