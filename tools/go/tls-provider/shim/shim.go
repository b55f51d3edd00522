// Package shim exposes the Terraform TLS provider (a terraform-plugin-framework provider kept in
// an internal package upstream) to our bridge wrapper.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	tlsprovider "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns a new instance of the upstream provider.
func NewProvider() provider.Provider {
	return tlsprovider.New()
}
