package regions

import (
	"regexp"
	"testing"
)

// The official SDK's KMS region table, region by region.
var sdkKMSEndpoints = map[string]string{
	"ae-ad-1":          "https://kms.ae-ad-1.myhuaweicloud.com",
	"af-north-1":       "https://kms.af-north-1.myhuaweicloud.com",
	"af-south-1":       "https://kms.af-south-1.myhuaweicloud.com",
	"ap-southeast-1":   "https://kms.ap-southeast-1.myhuaweicloud.com",
	"ap-southeast-2":   "https://kms.ap-southeast-2.myhuaweicloud.com",
	"ap-southeast-3":   "https://kms.ap-southeast-3.myhuaweicloud.com",
	"ap-southeast-4":   "https://kms.ap-southeast-4.myhuaweicloud.com",
	"ap-southeast-5":   "https://kms.ap-southeast-5.myhuaweicloud.com",
	"cn-east-2":        "https://kms.cn-east-2.myhuaweicloud.com",
	"cn-east-3":        "https://kms.cn-east-3.myhuaweicloud.com",
	"cn-east-4":        "https://kms.cn-east-4.myhuaweicloud.com",
	"cn-east-5":        "https://kms.cn-east-5.myhuaweicloud.com",
	"cn-north-1":       "https://kms.cn-north-1.myhuaweicloud.com",
	"cn-north-11":      "https://kms.cn-north-11.myhuaweicloud.com",
	"cn-north-12":      "https://kms.cn-north-12.myhuaweicloud.com",
	"cn-north-2":       "https://kms.cn-north-2.myhuaweicloud.com",
	"cn-north-4":       "https://kms.cn-north-4.myhuaweicloud.com",
	"cn-north-9":       "https://kms.cn-north-9.myhuaweicloud.com",
	"cn-south-1":       "https://kms.cn-south-1.myhuaweicloud.com",
	"cn-south-2":       "https://kms.cn-south-2.myhuaweicloud.com",
	"cn-south-4":       "https://kms.cn-south-4.myhuaweicloud.com",
	"cn-southwest-2":   "https://kms.cn-southwest-2.myhuaweicloud.com",
	"cn-southwest-3":   "https://kms.cn-southwest-3.myhuaweicloud.com",
	"eu-west-101":      "https://kms.eu-west-101.myhuaweicloud.eu",
	"la-north-2":       "https://kms.la-north-2.myhuaweicloud.com",
	"la-south-2":       "https://kms.la-south-2.myhuaweicloud.com",
	"me-east-1":        "https://kms.me-east-1.myhuaweicloud.com",
	"my-kualalumpur-1": "https://kms.my-kualalumpur-1.myhuaweicloud.com",
	"na-mexico-1":      "https://kms.na-mexico-1.myhuaweicloud.com",
	"ru-moscow-1":      "https://kms.ru-moscow-1.myhuaweicloud.com",
	"sa-brazil-1":      "https://kms.sa-brazil-1.myhuaweicloud.com",
	"tr-west-1":        "https://kms.tr-west-1.myhuaweicloud.com",
}

// The official SDK's IAM region table, region by region.
var sdkIAMEndpoints = map[string]string{
	"ae-ad-1":          "https://iam.ae-ad-1.myhuaweicloud.com",
	"af-south-1":       "https://iam.af-south-1.myhuaweicloud.com",
	"ap-southeast-1":   "https://iam.ap-southeast-1.myhuaweicloud.com",
	"ap-southeast-2":   "https://iam.ap-southeast-2.myhuaweicloud.com",
	"ap-southeast-3":   "https://iam.ap-southeast-3.myhuaweicloud.com",
	"ap-southeast-4":   "https://iam.ap-southeast-4.myhuaweicloud.com",
	"cn-east-2":        "https://iam.cn-east-2.myhuaweicloud.com",
	"cn-east-3":        "https://iam.cn-east-3.myhuaweicloud.com",
	"cn-east-4":        "https://iam.cn-east-4.myhuaweicloud.com",
	"cn-east-5":        "https://iam.cn-east-5.myhuaweicloud.com",
	"cn-north-1":       "https://iam.cn-north-1.myhuaweicloud.com",
	"cn-north-12":      "https://iam.cn-north-12.myhuaweicloud.com",
	"cn-north-2":       "https://iam.cn-north-2.myhuaweicloud.com",
	"cn-north-4":       "https://iam.cn-north-4.myhuaweicloud.com",
	"cn-north-9":       "https://iam.cn-north-9.myhuaweicloud.com",
	"cn-south-1":       "https://iam.cn-south-1.myhuaweicloud.com",
	"cn-south-2":       "https://iam.cn-south-2.myhuaweicloud.com",
	"cn-southwest-2":   "https://iam.cn-southwest-2.myhuaweicloud.com",
	"eu-west-0":        "https://iam.eu-west-0.myhuaweicloud.com",
	"eu-west-101":      "https://iam.eu-west-101.myhuaweicloud.eu",
	"la-north-2":       "https://iam.la-north-2.myhuaweicloud.com",
	"la-south-2":       "https://iam.la-south-2.myhuaweicloud.com",
	"me-east-1":        "https://iam.me-east-1.myhuaweicloud.com",
	"my-kualalumpur-1": "https://iam.my-kualalumpur-1.myhuaweicloud.com",
	"na-mexico-1":      "https://iam.na-mexico-1.myhuaweicloud.com",
	"ru-moscow-1":      "https://iam.ru-moscow-1.myhuaweicloud.com",
	"sa-brazil-1":      "https://iam.sa-brazil-1.myhuaweicloud.com",
	"tr-west-1":        "https://iam.tr-west-1.myhuaweicloud.com",
}

// regionShape is the shape the config requires of a region.
var regionShape = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

func TestKMSRegionTable(t *testing.T) {
	for region, want := range sdkKMSEndpoints {
		if !regionShape.MatchString(region) {
			t.Errorf("%s does not have the shape of a region", region)
		}
		if got := KMSEndpoint(region); got != want {
			t.Errorf("KMSEndpoint(%s) = %s, want %s", region, got, want)
		}
		if !HasKMS(region) {
			t.Errorf("HasKMS(%s) = false", region)
		}
	}
	for _, r := range []string{"eu-west-0", "xx-nowhere-1", ""} {
		if HasKMS(r) {
			t.Errorf("HasKMS(%q) = true", r)
		}
	}
}

func TestIAMRegionTable(t *testing.T) {
	for region, want := range sdkIAMEndpoints {
		if got := IAMEndpoint(region); got != want {
			t.Errorf("IAMEndpoint(%s) = %s, want %s", region, got, want)
		}
	}
	// Regions without an IAM endpoint of their own in the SDK's table use
	// the global one, as the SDK does; so do calls not tied to a region.
	others := []string{"xx-nowhere-1", ""}
	for region := range sdkKMSEndpoints {
		if _, ok := sdkIAMEndpoints[region]; !ok {
			others = append(others, region)
		}
	}
	for _, region := range others {
		if got := IAMEndpoint(region); got != "https://iam.myhuaweicloud.com" {
			t.Errorf("IAMEndpoint(%q) = %s, want %s", region, got, "https://iam.myhuaweicloud.com")
		}
	}
}
