package kmsapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Endpoint names, as reported to the Observer and used as the `endpoint`
// label of kms_api_requests_total. kmsfake uses the same names for faults
// and request counts.
const (
	EndpointQuotas            = "user-quotas"
	EndpointInstances         = "user-instances"
	EndpointResourceInstances = "resource-instances"
	EndpointRegions           = "regions"
	EndpointIAMToken          = "iam-token"
	EndpointIAMProjects       = "iam-projects"
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

// Authenticator adds authentication to a request. One implementation per
// credential kind: AK/SK (permanent or temporary), IAM user token, ECS agency.
type Authenticator interface {
	// Authenticate sets the auth headers on req, whose body is body, for the
	// project projectID ("" for calls not scoped to a project, e.g. IAM).
	Authenticate(ctx context.Context, req *http.Request, body []byte, projectID string) error
	// Invalidate drops cached tokens or temporary keys after the API rejected
	// them, so the next Authenticate fetches fresh ones.
	Invalidate()
}

// CredentialOptions configure a Credential. Zero values take the defaults.
type CredentialOptions struct {
	Name              string // for errors and logs
	Auth              Authenticator
	IAMEndpoint       string  // default DefaultIAMEndpoint; used for project lookup
	RequestsPerSecond float64 // client-side rate limit; default 10
	Concurrency       int     // requests in flight; default 8
	HTTPClient        *http.Client
	UserAgent         string // default "kms_exporter/<version>"
	Observer          Observer
	// Pause after an authentication failure: starts at AuthPauseMin and
	// doubles per consecutive failure up to AuthPauseMax. Defaults 30s, 5m.
	AuthPauseMin, AuthPauseMax time.Duration
	Now                        func() time.Time // for tests; default time.Now
}

// Credential is what every target that uses one named credential shares: the
// authenticator, the rate limit, the cap on requests in flight, and the pause
// after an authentication failure that keeps a wrong secret from locking the AK.
type Credential struct {
	opts CredentialOptions
}

// NewCredential builds a Credential.
func NewCredential(o CredentialOptions) (*Credential, error) {
	if o.Auth == nil {
		return nil, errors.New("credential " + o.Name + ": no authenticator")
	}
	return &Credential{opts: o}, nil
}

// LookupProject returns the ID of the project named after region, from IAM.
func (c *Credential) LookupProject(ctx context.Context, region string) (string, error) {
	return "", errors.New("not implemented yet")
}

// ClientOptions configure a Client for one target.
type ClientOptions struct {
	Region     string
	ProjectID  string
	Endpoint   string // KMS base URL; default DefaultKMSEndpoint(Region)
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
		o.Endpoint = DefaultKMSEndpoint(o.Region)
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	return &Client{opts: o}, nil
}

// DefaultIAMEndpoint is the global IAM endpoint.
const DefaultIAMEndpoint = "https://iam.myhuaweicloud.com"

// DefaultKMSEndpoint gives the public KMS endpoint of a region.
func DefaultKMSEndpoint(region string) string {
	if region == "eu-west-101" {
		return "https://kms.eu-west-101.myhuaweicloud.eu"
	}
	return "https://kms." + region + ".myhuaweicloud.com"
}

// Quotas calls user-quotas.
func (c *Client) Quotas(ctx context.Context) ([]Quota, error) {
	return nil, errors.New("not implemented yet")
}

// InstanceCount calls user-instances: the number of non-default CMKs.
func (c *Client) InstanceCount(ctx context.Context) (int64, error) {
	return 0, errors.New("not implemented yet")
}

// FilterKeys calls resource_instances with action filter for one page.
func (c *Client) FilterKeys(ctx context.Context, q KeyQuery, limit, offset int) (KeyPage, error) {
	return KeyPage{}, errors.New("not implemented yet")
}

// CountKeys calls resource_instances with action count.
func (c *Client) CountKeys(ctx context.Context, q KeyQuery) (int, error) {
	return 0, errors.New("not implemented yet")
}

// ListKeys returns every key matching q in the API's order: the first page
// tells the total, the rest are fetched concurrently.
func (c *Client) ListKeys(ctx context.Context, q KeyQuery) ([]Key, error) {
	return nil, errors.New("not implemented yet")
}

// Regions lists the regions cross-region keys support, paging until a short page.
func (c *Client) Regions(ctx context.Context) ([]string, error) {
	return nil, errors.New("not implemented yet")
}

// Region and ProjectID of the target this client serves.
func (c *Client) Region() string    { return c.opts.Region }
func (c *Client) ProjectID() string { return c.opts.ProjectID }
