package kmsapi

import (
	"context"
	"net/http"
	"slices"
)

// iamRegions have an IAM endpoint of their own in the official SDK's IAM
// region table.
var iamRegions = []string{
	"ae-ad-1", "af-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
	"ap-southeast-4", "cn-east-2", "cn-east-3", "cn-east-4", "cn-east-5",
	"cn-north-1", "cn-north-12", "cn-north-2", "cn-north-4", "cn-north-9",
	"cn-south-1", "cn-south-2", "cn-southwest-2", "eu-west-0", "eu-west-101",
	"la-north-2", "la-south-2", "me-east-1", "my-kualalumpur-1", "na-mexico-1",
	"ru-moscow-1", "sa-brazil-1", "tr-west-1",
}

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
	if _, ok := slices.BinarySearch(iamRegions, region); !ok {
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
