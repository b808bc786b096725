// Package kmsfake is an in-process fake of the Huawei Cloud KMS read APIs,
// the IAM calls they need and the ECS metadata service, all on one base URL.
// Tests use it to exercise the client against the API's documented quirks
// (both number encodings, both error shapes, signing, tokens, throttling,
// faults); kms_exporter --demo serves Demo from it.
package kmsfake

import (
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Scenario is the account the fake serves.
type Scenario struct {
	Projects []Project
	// AccessKeys are the AK/SK pairs the fake accepts. Temporary ones have a
	// SecurityToken, which must then be sent as X-Security-Token and signed.
	AccessKeys []AccessKey
	// Users are IAM users that may log in with a password, to any project in Projects.
	Users []User
	// IdentityProviders are OpenID Connect identity providers of the
	// account: their ID tokens (see Server.IDToken) are exchanged for
	// tokens of any project in Projects.
	IdentityProviders []IdentityProvider
	// Agency holds the temporary credentials the metadata service hands out;
	// nil: the metadata service answers 404. They are accepted for signing.
	Agency *AccessKey
	// CrossRegions is the answer of GET /v2/{project_id}/kms/regions (same for every project).
	CrossRegions []string
	// OtherProjects are IAM projects without KMS (e.g. "MOS"): listed by
	// GET /v3/auth/projects, refused (403 KMS.0321) by KMS.
	OtherProjects []IAMProject
}

// Project is one IAM project (one region) of the account.
type Project struct {
	ID     string
	Region string
	// Name is the IAM project name: "" for a region project (named Region),
	// or a sub-project's name such as "cn-north-4_payments".
	Name      string
	Quotas    []kmsapi.Quota
	Instances int64 // answer of user-instances
	Keys      []kmsapi.Key
}

// IAMProject is a project IAM lists that is not a KMS Project.
type IAMProject struct{ ID, Name string }

// IAMName is the project's IAM name: Name, else Region.
func (p Project) IAMName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Region
}

// AccessKey is an AK/SK pair; SecurityToken is set for temporary credentials.
type AccessKey struct{ AK, SK, SecurityToken string }

// User is an IAM user that logs in with a password.
type User struct{ Domain, Name, Password string }

// Fault changes how the fake answers an endpoint.
type Fault struct {
	Latency time.Duration // added before answering (honours request cancellation)
	// Status answers this status with the real error body for it (e.g. 500
	// KMS.0101, 502, 504, 403 KMS.0306/APIGW.0302, 401 APIGW.0301, 404).
	Status       int
	ErrorCode    string // overrides the error_code of Status
	ErrorMessage string // overrides the error_msg of Status
	// ThrottleRate is the fraction of requests answered 429 APIGW.0308,
	// deterministically: 1 every request, 0.5 every second one, and so on.
	ThrottleRate float64
	Malformed    bool  // 200 with a body that is not JSON
	Truncated    bool  // 200 with the valid answer cut in half
	Hang         bool  // never answer until the client gives up or the server closes
	HugeBody     int64 // 200 with this many bytes of valid-looking JSON padding
}

// Encoding chooses how numbers appear in answers: the API documents both
// JSON numbers and strings ("2", "1502799822000").
type Encoding int

const (
	Alternate Encoding = iota // switch per response, so clients meet both shapes
	Numeric
	Strings
)

// Detail chooses the members of resource_detail in key pages.
type Detail int

const (
	// DetailFull has the 17 fields of the official SDK's model (the 9 of
	// the documented example plus realm, key_spec, key_usage, origin,
	// key_rotation_enabled, sys_enterprise_project_id, keystore_id and
	// expiration_time), and key_label and partition_type, which live
	// answers add.
	DetailFull Detail = iota
	// DetailExample has only the 9 fields of the documentation's example.
	DetailExample
)

// GenerateOptions shape a generated scenario.
type GenerateOptions struct {
	Seed           int64
	Projects       int
	KeysPerProject int
	Regions        []string  // cycled over projects; default a realistic list
	Now            time.Time // deletion dates are relative to it
	AccessKey      AccessKey // the credential to put in the scenario (ExampleAccessKey if zero)
}
