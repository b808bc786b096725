package kmsapi

import (
	"slices"
	"strings"
)

// kmsRegions are the regions the official SDK knows a KMS endpoint for. An
// IAM project named after one of them (or a sub-project of one) has KMS.
var kmsRegions = []string{
	"ae-ad-1", "af-north-1", "af-south-1", "ap-southeast-1", "ap-southeast-2",
	"ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "cn-east-2", "cn-east-3",
	"cn-east-4", "cn-east-5", "cn-north-1", "cn-north-11", "cn-north-12",
	"cn-north-2", "cn-north-4", "cn-north-9", "cn-south-1", "cn-south-2",
	"cn-south-4", "cn-southwest-2", "cn-southwest-3", "eu-west-101", "la-north-2",
	"la-south-2", "me-east-1", "my-kualalumpur-1", "na-mexico-1", "ru-moscow-1",
	"sa-brazil-1", "tr-west-1",
}

// IsKMSRegion reports whether region has a KMS endpoint.
func IsKMSRegion(region string) bool { return slices.Contains(kmsRegions, region) }

// ProjectRegion is the region of an IAM project name: the name itself for a
// region project ("cn-north-4"), the part before the first "_" for a
// sub-project ("cn-north-4_payments").
func ProjectRegion(projectName string) string {
	region, _, _ := strings.Cut(projectName, "_")
	return region
}
