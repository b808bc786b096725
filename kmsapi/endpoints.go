package kmsapi

import (
	"context"
	"net/http"
	"slices"
)

// The official SDK's IAM region table has an endpoint for every KMS
// region but these, and for eu-west-0, which has no KMS.
var (
	kmsRegionsWithoutIAM = []string{"af-north-1", "ap-southeast-5", "cn-north-11", "cn-south-4", "cn-southwest-3"}
	iamOnlyRegions       = []string{"eu-west-0"}
)

// DefaultKMSEndpoint gives the public KMS endpoint of a region.
func DefaultKMSEndpoint(region string) string {
	return "https://kms." + region + "." + domain(region)
}

// globalIAMEndpoint serves the regions without an IAM endpoint of their own,
// and calls not tied to a region.
const globalIAMEndpoint = "https://iam.myhuaweicloud.com"

// DefaultIAMEndpoint gives the IAM endpoint of a region as the official
// SDK does: the region's own, else the global one. eu-west-101 is only
// known to its own IAM, which is on another domain.
func DefaultIAMEndpoint(region string) string {
	regional := IsKMSRegion(region) && !slices.Contains(kmsRegionsWithoutIAM, region) ||
		slices.Contains(iamOnlyRegions, region)
	if !regional {
		return globalIAMEndpoint
	}
	return "https://iam." + region + "." + domain(region)
}

func domain(region string) string {
	if region == "eu-west-101" {
		return "myhuaweicloud.eu"
	}
	return "myhuaweicloud.com"
}

// iamEndpointFor is override when set, else the IAM endpoint of region
// ("" for calls not tied to a region).
func iamEndpointFor(override, region string) string {
	if override != "" {
		return override
	}
	return DefaultIAMEndpoint(region)
}

// iamEndpoint is the IAM endpoint the credential calls for region.
func (c *Credential) iamEndpoint(region string) string {
	return iamEndpointFor(c.opts.IAMEndpoint, region)
}

// regionalAuthenticator is implemented by authenticators that call IAM:
// they are told the region of the request, whose IAM they must ask.
type regionalAuthenticator interface {
	authenticateIn(ctx context.Context, req *http.Request, body []byte, projectID, region string) error
}

func authenticate(ctx context.Context, a Authenticator, req *http.Request, body []byte, projectID, region string) error {
	if ra, ok := a.(regionalAuthenticator); ok {
		return ra.authenticateIn(ctx, req, body, projectID, region)
	}
	return a.Authenticate(ctx, req, body, projectID)
}
