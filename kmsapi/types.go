// Package kmsapi is a client for the read APIs of Huawei Cloud KMS and the
// IAM calls they need: quotas, instance count, key listing by
// resource_instances, the cross-region region list, project lookup, and four
// ways to authenticate.
package kmsapi

import "time"

// Quota is one entry of user-quotas: Resource is the API's `type`
// ("CMK", "grant_per_CMK", or any other value the API returns).
type Quota struct {
	Resource string
	Used     int64
	Limit    int64
}

// KeyState is the API's key_state.
type KeyState int

const (
	StatePendingActivation KeyState = 1
	StateEnabled           KeyState = 2
	StateDisabled          KeyState = 3
	StatePendingDeletion   KeyState = 4
	StatePendingImport     KeyState = 5
)

var stateNames = [...]string{StatePendingActivation: "pending_activation", StateEnabled: "enabled",
	StateDisabled: "disabled", StatePendingDeletion: "pending_deletion", StatePendingImport: "pending_import"}

// String gives the metric label value of a state; "unknown" for anything the
// API does not document.
func (s KeyState) String() string {
	if s > 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Key is one CMK as resource_instances describes it.
type Key struct {
	ID           string
	Alias        string
	Description  string
	DomainID     string
	ResourceName string
	State        KeyState
	Default      bool // default_key_flag 1: a service's default master key
	KeyType      int
	Created      time.Time // zero when absent
	// ScheduledDeletion is when a key pending deletion will be deleted; zero
	// when no deletion is scheduled.
	ScheduledDeletion time.Time
	// Expires is the expiration_time of imported key material; zero when none.
	Expires time.Time
	Tags    []Tag

	// Attributes the documentation's example leaves out but the SDK's model
	// has; "" when the answer leaves them out. RotationEnabled is "true" or
	// "false" (the API sends a string or a bool).
	KeySpec             string // AES_256, SM4, RSA_2048, EC_P256, SM2, HMAC_256, ...
	KeyUsage            string // ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC
	Origin              string // kms, or external for imported key material
	RotationEnabled     string
	EnterpriseProjectID string // sys_enterprise_project_id; "0" is the default project
}

// Tag is a tag on a key as the API returns it.
type Tag struct {
	Key   string
	Value string
}

// MaxPageSize is the largest limit resource_instances accepts.
const MaxPageSize = 1000
