// Package regions knows the Huawei Cloud regions: which have KMS, and the
// public KMS and IAM endpoint of each, as the official SDK's tables have
// them. The config checks regions against it, discovery picks the projects
// of KMS regions, and kmsapi calls the endpoints.
package regions

import (
	"slices"
	"strings"
)

// kms are the regions the official SDK knows a KMS endpoint for. An IAM
// project named after one of them (or a sub-project of one) has KMS.
var kms = []string{
	"ae-ad-1", "af-north-1", "af-south-1", "ap-southeast-1", "ap-southeast-2",
	"ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "cn-east-2", "cn-east-3",
	"cn-east-4", "cn-east-5", "cn-north-1", "cn-north-11", "cn-north-12",
	"cn-north-2", "cn-north-4", "cn-north-9", "cn-south-1", "cn-south-2",
	"cn-south-4", "cn-southwest-2", "cn-southwest-3", "eu-west-101", "la-north-2",
	"la-south-2", "me-east-1", "my-kualalumpur-1", "na-mexico-1", "ru-moscow-1",
	"sa-brazil-1", "tr-west-1",
}

// The official SDK's IAM region table has an endpoint for every KMS
// region but these, and for eu-west-0, which has no KMS.
var (
	kmsWithoutIAM = []string{"af-north-1", "ap-southeast-5", "cn-north-11", "cn-south-4", "cn-southwest-3"}
	iamOnly       = []string{"eu-west-0"}
)

// HasKMS reports whether region has a KMS endpoint.
func HasKMS(region string) bool { return slices.Contains(kms, region) }

// OfProject is the region of an IAM project name: the name itself for a
// region project ("cn-north-4"), the part before the first "_" for a
// sub-project ("cn-north-4_payments").
func OfProject(projectName string) string {
	region, _, _ := strings.Cut(projectName, "_")
	return region
}

// KMSEndpoint gives the public KMS endpoint of a region.
func KMSEndpoint(region string) string {
	return "https://kms." + region + "." + domain(region)
}

// IAMEndpoint gives the IAM endpoint of a region as the official SDK does:
// the region's own, else the global one, which also serves calls not tied
// to a region (""). eu-west-101 is only known to its own IAM, which is on
// another domain.
func IAMEndpoint(region string) string {
	if HasKMS(region) && !slices.Contains(kmsWithoutIAM, region) || slices.Contains(iamOnly, region) {
		return "https://iam." + region + "." + domain(region)
	}
	return "https://iam.myhuaweicloud.com"
}

func domain(region string) string {
	if region == "eu-west-101" {
		return "myhuaweicloud.eu"
	}
	return "myhuaweicloud.com"
}
