package kmsapi

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/kms-exporter/kms_exporter/internal/flight"
	"github.com/kms-exporter/kms_exporter/kmsapi/internal/sign"
)

// NewAKSK signs every request with an AK/SK pair; securityToken is set for
// temporary credentials and empty for permanent ones.
func NewAKSK(ak, sk, securityToken string) Authenticator {
	return &akskAuth{ak: ak, sk: sk, token: securityToken}
}

type akskAuth struct{ ak, sk, token string }

func (a *akskAuth) Authenticate(_ context.Context, req *http.Request, body []byte, _ string) error {
	sign.Sign(req, body, a.ak, a.sk, a.token, time.Now())
	return nil
}

func (a *akskAuth) Invalidate() {}

// IAMPasswordOptions configure IAM user-token authentication.
type IAMPasswordOptions struct {
	IAMEndpoint string // override; default the IAM endpoint of each call's region (DefaultIAMEndpoint)
	DomainName  string
	UserName    string
	Password    string
	Now         func() time.Time
}

// ECSMetadataOptions configure ECS agency credentials.
type ECSMetadataOptions struct {
	Endpoint   string       // default http://169.254.169.254
	HTTPClient *http.Client // default one that never goes through a proxy
	Now        func() time.Time
}

// authHTTP makes an authenticator's own calls (IAM login, metadata) with
// the HTTP client, user agent and observer of the Credential it serves;
// a client of its own (the metadata service's) stays.
type authHTTP struct {
	mu  sync.Mutex
	env authEnv
}

func (h *authHTTP) setEnv(e authEnv) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.client = cmp.Or(h.env.client, e.client)
	h.env = e
}

func (h *authHTTP) get() authEnv {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.env.client == nil {
		h.env.client = NewHTTPClient()
	}
	h.env.userAgent = cmp.Or(h.env.userAgent, defaultUserAgent())
	return h.env
}

// do sends one request and returns the 2xx answer, or an *Error. Request
// headers (which may hold secrets) never reach the error.
func (h *authHTTP) do(ctx context.Context, endpoint, method, url string, header http.Header, body []byte) (int, http.Header, []byte, error) {
	env := h.get()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, &Error{Endpoint: endpoint, Err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", env.userAgent)
	start := time.Now()
	resp, err := env.client.Do(req)
	traced := attempt{call: &callInfo{endpoint: endpoint, method: method, url: url, took: time.Since(start)}}
	if err != nil {
		traced.err = &Error{Endpoint: endpoint, Err: err}
	} else {
		traced.call.status, traced.call.reqID = resp.StatusCode, resp.Header.Get("X-Request-Id")
	}
	traceAttempt(ctx, traced, 1, 0)
	if err != nil {
		if env.observer != nil {
			env.observer(RequestInfo{Endpoint: endpoint, Code: "error", Duration: time.Since(start)})
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, nil, nil, &Error{Endpoint: endpoint, Err: err}
	}
	defer resp.Body.Close()
	data, rerr := readBody(resp)
	if env.observer != nil {
		env.observer(RequestInfo{Endpoint: endpoint, Code: strconv.Itoa(resp.StatusCode), Duration: time.Since(start)})
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, resp.Header, nil, parseError(endpoint, resp.StatusCode, resp.Header, data)
	}
	if rerr != nil {
		return resp.StatusCode, resp.Header, nil, &Error{Endpoint: endpoint, StatusCode: resp.StatusCode, Err: rerr}
	}
	return resp.StatusCode, resp.Header, data, nil
}

// newMetadataClient talks to the link-local metadata service directly: a
// proxy from the environment must not see the request.
func newMetadataClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		},
	}
}

// refreshAt is when a cached secret that expires at expires is replaced:
// 1/fraction of its lifetime before, but no earlier than maxMargin before.
// IAM tokens (24 h) use a tenth capped at 30 min, metadata keys (1 h) half
// capped at 15 min.
func refreshAt(now, expires time.Time, fraction int, maxMargin time.Duration) time.Time {
	life := expires.Sub(now)
	margin := min(life/time.Duration(fraction), maxMargin)
	return expires.Add(-margin)
}

// sharedFlight runs fn once for concurrent callers of key; it runs on its
// own context, so a caller with a short deadline does not fail the others.
func sharedFlight[T any](ctx context.Context, g *flight.Group[string, T], key, endpoint string, fn func(context.Context) (T, error)) (T, error) {
	v, err := g.Do(ctx, key, fn)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return v, &Error{Endpoint: endpoint, Err: err}
	}
	return v, err
}

// NewIAMPassword logs in with a password and sends the project-scoped token
// as X-Auth-Token, caching one token per project until shortly before it expires.
func NewIAMPassword(o IAMPasswordOptions) Authenticator {
	a := &iamAuth{o: o}
	a.init(o.IAMEndpoint, o.Now, a.login)
	return a
}

type iamAuth struct {
	tokenSource
	o IAMPasswordOptions
}

// loginBody asks for a token scoped to the project (by ID or, to look one
// up, by name), or to the domain for calls scoped to no project.
func (a *iamAuth) loginBody(projectID, projectName string) []byte {
	type obj = map[string]any
	scope := obj{"domain": obj{"name": a.o.DomainName}}
	if projectID != "" {
		scope = obj{"project": obj{"id": projectID}}
	} else if projectName != "" {
		scope = obj{"project": obj{"name": projectName}}
	}
	user := obj{"name": a.o.UserName, "password": a.o.Password, "domain": obj{"name": a.o.DomainName}}
	data, _ := json.Marshal(obj{"auth": obj{ // strings only: cannot fail
		"identity": obj{"methods": []string{"password"}, "password": obj{"user": user}},
		"scope":    scope,
	}})
	return data
}

func (a *iamAuth) login(ctx context.Context, region, projectID, projectName string) (*iamToken, error) {
	return a.post(ctx, region, "/v3/auth/tokens", http.Header{}, a.loginBody(projectID, projectName), projectID, projectName)
}

// defaultECSMetadataEndpoint is the link-local metadata service.
const defaultECSMetadataEndpoint = "http://169.254.169.254"

// metadataTokenTTL is asked for the optional metadata session token.
const metadataTokenTTL = "21600"

// NewECSMetadata signs with the temporary AK/SK of the ECS agency, read from
// the metadata service and refreshed well before they expire (when half
// their lifetime, at most 15 minutes, is left).
func NewECSMetadata(o ECSMetadataOptions) Authenticator {
	if o.Endpoint == "" {
		o.Endpoint = defaultECSMetadataEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = newMetadataClient()
	}
	return &ecsAuth{o: o, h: authHTTP{env: authEnv{client: o.HTTPClient}}}
}

type ecsAuth struct {
	o   ECSMetadataOptions
	h   authHTTP
	sf  flight.Group[string, *ecsKey]
	mu  sync.Mutex
	cur *ecsKey
}

type ecsKey struct {
	securityKey
	refreshAt time.Time
}

func (a *ecsAuth) setEnv(e authEnv) { a.h.setEnv(e) }

func (a *ecsAuth) Authenticate(ctx context.Context, req *http.Request, body []byte, _ string) error {
	a.mu.Lock()
	k := a.cur
	a.mu.Unlock()
	if k == nil || !a.o.Now().Before(k.refreshAt) {
		var err error
		k, err = sharedFlight(ctx, &a.sf, "key", EndpointECSMetadata, a.fetch)
		if err != nil {
			return err
		}
	}
	// Signed on the same clock that judges expiry (time.Now unless a test sets it).
	sign.Sign(req, body, k.AK, k.SK, k.Token, a.o.Now())
	return nil
}

func (a *ecsAuth) fetch(ctx context.Context) (*ecsKey, error) {
	hdr := http.Header{}
	// The session token is optional: older metadata services lack it.
	_, _, tok, err := a.h.do(ctx, EndpointECSMetadata, http.MethodPut, a.o.Endpoint+"/meta-data/latest/api/token",
		http.Header{"X-Metadata-Token-Ttl-Seconds": {metadataTokenTTL}}, nil)
	if ctx.Err() != nil {
		return nil, &Error{Endpoint: EndpointECSMetadata, Err: ctx.Err()}
	}
	if t := strings.TrimSpace(string(tok)); err == nil && t != "" && len(t) < 4096 {
		hdr.Set("X-Metadata-Token", t)
	}
	_, _, body, err := a.h.do(ctx, EndpointECSMetadata, http.MethodGet, a.o.Endpoint+"/openstack/latest/securitykey", hdr, nil)
	if err != nil {
		return nil, err
	}
	sk, err := decodeSecurityKey(body)
	if err != nil {
		return nil, err
	}
	now := a.o.Now()
	if !sk.Expires.After(now) {
		return nil, &Error{Endpoint: EndpointECSMetadata, StatusCode: http.StatusOK, Err: fmt.Errorf("credential expired at %s on arrival; check the clock", sk.Expires.Format(time.RFC3339))}
	}
	k := &ecsKey{securityKey: sk, refreshAt: refreshAt(now, sk.Expires, 2, 15*time.Minute)}
	a.mu.Lock()
	a.cur = k
	a.mu.Unlock()
	return k, nil
}

func (a *ecsAuth) Invalidate() {
	a.mu.Lock()
	a.cur = nil
	a.mu.Unlock()
}

func (a *ecsAuth) rejected(req *http.Request) {
	ak, _, _, err := sign.ParseAuthorization(req.Header.Get("Authorization"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && (err != nil || a.cur.AK == ak) {
		a.cur = nil
	}
}
