// Package kmsapi is a client for the read APIs of Huawei Cloud KMS and the
// IAM calls they need: quotas, instance count, key listing by
// resource_instances, the cross-region region list, project lookup, and four
// ways to authenticate.
package kmsapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/regions"
)

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

// Endpoint names, as reported to the Observer and used as the `endpoint`
// label of kms_api_requests_total. kmsfake uses the same names for faults
// and request counts.
const (
	EndpointQuotas            = "user-quotas"
	EndpointInstances         = "user-instances"
	EndpointResourceInstances = "resource-instances"
	EndpointRegions           = "regions"
	EndpointIAMToken          = "iam-token"
	EndpointIAMProjects       = "iam-projects"     // GET /v3/projects?name=: one project by name
	EndpointIAMProjectList    = "iam-project-list" // GET /v3/auth/projects: every project the credential may use
	EndpointECSMetadata       = "ecs-metadata"
)

// RequestInfo describes one HTTP request the client made.
type RequestInfo struct {
	Region   string // target region; "" for IAM and metadata calls
	Endpoint string // one of the Endpoint* names
	Code     string // HTTP status code as text, or "error" when no response came
	Duration time.Duration
}

// Observer is told about every HTTP request, retries included. It must be
// safe for concurrent use and fast.
type Observer func(RequestInfo)

// ClientOptions configure a Client for one target.
type ClientOptions struct {
	Region     string
	ProjectID  string
	Endpoint   string // KMS base URL; default regions.KMSEndpoint(Region)
	Credential *Credential
}

// Client calls the KMS read APIs of one project in one region.
type Client struct {
	opts ClientOptions
}

// NewClient builds a Client.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Credential == nil || o.ProjectID == "" || o.Region == "" {
		return nil, errors.New("kmsapi: region, project ID and credential are required")
	}
	if o.Endpoint == "" {
		o.Endpoint = regions.KMSEndpoint(o.Region)
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	return &Client{opts: o}, nil
}

// Region and ProjectID of the target this client serves.
func (c *Client) Region() string    { return c.opts.Region }
func (c *Client) ProjectID() string { return c.opts.ProjectID }

// call calls a KMS API of the client's project: path below
// /<version>/<project>/kms/, body for POST.
func (c *Client) call(ctx context.Context, endpoint, version, path string, body []byte, decode decodeFunc) error {
	r := &request{
		endpoint:  endpoint,
		region:    c.opts.Region,
		method:    http.MethodGet,
		url:       c.opts.Endpoint + "/" + version + "/" + url.PathEscape(c.opts.ProjectID) + "/kms/" + path,
		body:      body,
		projectID: c.opts.ProjectID,
		decode:    decode,
	}
	if body != nil {
		r.method = http.MethodPost
	}
	return c.opts.Credential.do(ctx, r)
}

// Quotas calls user-quotas.
func (c *Client) Quotas(ctx context.Context) (q []Quota, err error) {
	err = c.call(ctx, EndpointQuotas, "v1.0", "user-quotas", nil, func(_ *http.Response, body io.Reader) error {
		q, err = decodeQuotas(body)
		return err
	})
	return q, err
}

// InstanceCount calls user-instances: the number of non-default CMKs.
func (c *Client) InstanceCount(ctx context.Context) (n int64, err error) {
	err = c.call(ctx, EndpointInstances, "v1.0", "user-instances", nil, func(_ *http.Response, body io.Reader) error {
		n, err = decodeInstances(body)
		return err
	})
	return n, err
}

// regionsPageSize is the page size asked of the regions list, and
// maxRegionPages bounds its paging.
var (
	regionsPageSize = 100
	maxRegionPages  = 50
)

// Regions lists the regions cross-region keys support. The list has no
// total, and a server may cap the page size below what is asked, so a short
// page does not end it: paging stops at the first empty page.
func (c *Client) Regions(ctx context.Context) ([]string, error) {
	all := []string{}
	for range maxRegionPages {
		path := "regions?limit=" + strconv.Itoa(regionsPageSize) + "&offset=" + strconv.Itoa(len(all))
		var regions []string
		err := c.call(ctx, EndpointRegions, "v2", path, nil, func(_ *http.Response, body io.Reader) (err error) {
			regions, err = decodeRegions(body)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(regions) == 0 {
			return all, nil
		}
		all = append(all, regions...)
	}
	return nil, decodeError(EndpointRegions, "more than %d pages of regions", maxRegionPages)
}
