package kmsfake

import (
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Enterprise projects of generated keys besides the default one ("0").
const (
	enterpriseProjectPayments = "6b8e4a2c-1f3d-4e5a-9b7c-0d2e4f6a8b1c"
	enterpriseProjectData     = "c2d4e6f8-0a1b-4c3d-8e5f-7a9b1c3d5e7f"
)

var (
	symmetricSpecs  = []string{"AES_256", "AES_256", "AES_256", "AES_256", "AES_256", "AES_256", "AES_256", "SM4", "SM4", "HMAC_256"}
	asymmetricSpecs = []string{"RSA_2048", "RSA_3072", "EC_P256", "SM2", "RSA_4096"}
	// Days until imported key material expires, by imported key.
	materialDays = []int{12, 45, 170, 25, 300}
)

// setAttributes gives customer key number n the attributes a real account
// shows: mostly AES_256 with some SM4 and HMAC, asymmetric keys (key type
// 2) for signing or encryption, rotation on for a third of the keys KMS
// generated, some imported key material (expiring soon or later, or
// never), and a few keys in two enterprise projects besides the default.
// It depends on n and the key's type and state only, so generated
// scenarios keep their random sequence.
func setAttributes(k *kmsapi.Key, n int, now time.Time) {
	k.Origin, k.RotationEnabled, k.EnterpriseProjectID = "kms", "false", "0"
	if k.KeyType == 1 {
		k.KeySpec = symmetricSpecs[n%len(symmetricSpecs)]
	} else {
		k.KeySpec = asymmetricSpecs[n%len(asymmetricSpecs)]
	}
	switch k.KeySpec {
	case "HMAC_256":
		k.KeyUsage = "GENERATE_VERIFY_MAC"
	case "RSA_3072", "EC_P256", "SM2":
		k.KeyUsage = "SIGN_VERIFY"
	default:
		k.KeyUsage = "ENCRYPT_DECRYPT"
	}
	switch {
	case k.State == kmsapi.StatePendingImport:
		// Created for imported material that has not come yet.
		k.KeySpec, k.KeyUsage, k.Origin = "AES_256", "ENCRYPT_DECRYPT", "external"
	case k.KeyType == 1 && n%25 == 3:
		k.KeySpec, k.KeyUsage, k.Origin = "AES_256", "ENCRYPT_DECRYPT", "external"
		days := materialDays[(n/25)%len(materialDays)]
		k.Expires = now.Add(time.Duration(days)*day + time.Duration(n)*time.Hour).Truncate(time.Millisecond)
	case k.KeyType == 1 && n%50 == 40:
		k.KeySpec, k.KeyUsage, k.Origin = "AES_256", "ENCRYPT_DECRYPT", "external" // material that never expires
	case k.KeyType == 1 && k.KeySpec != "HMAC_256" && n%3 == 0:
		k.RotationEnabled = "true"
	}
	switch {
	case n%7 == 1:
		k.EnterpriseProjectID = enterpriseProjectPayments
	case n%11 == 5:
		k.EnterpriseProjectID = enterpriseProjectData
	}
}

// setDefaultKeyAttributes: a service's default master key is an AES_256
// key of KMS in the default enterprise project, rotation off.
func setDefaultKeyAttributes(k *kmsapi.Key) {
	k.KeySpec, k.KeyUsage, k.Origin, k.RotationEnabled, k.EnterpriseProjectID = "AES_256", "ENCRYPT_DECRYPT", "kms", "false", "0"
}
