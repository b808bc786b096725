package kmsapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-kit/log"

	"github.com/kms-exporter/kms_exporter/internal/pausestore"
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
	IAMEndpoint       string  // override; default the IAM endpoint of each call's region (DefaultIAMEndpoint)
	RequestsPerSecond float64 // client-side rate limit; default 10
	Concurrency       int     // requests in flight; default 8
	HTTPClient        *http.Client
	UserAgent         string // default "kms_exporter/<version>"
	Observer          Observer
	// Pause after an authentication failure: starts at AuthPauseMin and
	// doubles per consecutive failure up to AuthPauseMax, but never lets
	// more than 3 failures reach the API in any 5 minutes. Defaults 30s, 5m.
	AuthPauseMin, AuthPauseMax time.Duration
	// PauseStore, if set, hands the pause on to the next Credential of the
	// same AK: after a reload, and with a directory after a restart.
	PauseStore *pausestore.Store
	// Logger gets one warning per pause, and each API call at debug level.
	Logger log.Logger
	Now    func() time.Time // for tests; default time.Now
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

// Region and ProjectID of the target this client serves.
func (c *Client) Region() string    { return c.opts.Region }
func (c *Client) ProjectID() string { return c.opts.ProjectID }

// Credential is the credential this client calls with.
func (c *Client) Credential() *Credential { return c.opts.Credential }
