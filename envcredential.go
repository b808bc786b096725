package main

import (
	"errors"

	promconfig "github.com/prometheus/common/config"

	"github.com/kms-exporter/kms_exporter/config"
)

// envCredential is the credential of the target built from flags, from the
// variables the official SDKs read, in their order: an AK/SK pair
// (temporary with a security token), else OIDC workload identity (an
// identity provider and the file Kubernetes projects its ID token into).
// A secret never comes from a flag.
func envCredential(getenv func(string) string) (*config.Credential, error) {
	ak, sk := getenv("HUAWEICLOUD_SDK_AK"), getenv("HUAWEICLOUD_SDK_SK")
	idp, tokenFile := getenv("HUAWEICLOUD_SDK_IDP_ID"), getenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE")
	switch {
	case ak != "" && sk != "":
		return &config.Credential{
			AccessKey:     ak,
			SecretKey:     promconfig.Secret(sk),
			SecurityToken: promconfig.Secret(getenv("HUAWEICLOUD_SDK_SECURITY_TOKEN")),
		}, nil
	case ak == "" && sk == "" && (idp != "" || tokenFile != ""):
		// What is missing is told by the config's check, in the variables' names.
		return &config.Credential{OIDC: &config.OIDC{IdpID: idp, IDTokenFile: tokenFile}}, nil
	}
	return nil, errors.New("--kms.region without --config.file needs HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, or HUAWEICLOUD_SDK_IDP_ID and HUAWEICLOUD_SDK_ID_TOKEN_FILE, in the environment")
}
