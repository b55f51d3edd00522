// Local module at the path upstream pulumi-tls uses for its shim. Go's `internal` rule is checked
// by import path, so a module under github.com/hashicorp/terraform-provider-tls/ may import the
// provider's internal/provider package. It is never published; ../go.mod replaces it with ./shim.
module github.com/hashicorp/terraform-provider-tls/shim

go 1.24.8

require (
	github.com/hashicorp/terraform-plugin-framework v1.17.0
	github.com/hashicorp/terraform-provider-tls v1.2.1-0.20260130152455-857b38cda3fc
)
