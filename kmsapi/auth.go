package kmsapi

import (
	"bytes"
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
	HTTPClient  *http.Client
	Observer    Observer
	Now         func() time.Time
}

// ECSMetadataOptions configure ECS agency credentials.
type ECSMetadataOptions struct {
	Endpoint   string // default http://169.254.169.254
	HTTPClient *http.Client
	Observer   Observer
	Now        func() time.Time
}

// authHTTP makes an authenticator's own calls (IAM login, metadata). Its
// client, user agent and observer come from the authenticator's options,
// else from the Credential it serves.
type authHTTP struct {
	mu       sync.Mutex
	client   *http.Client
	ua       string
	observer Observer
	noProxy  bool // metadata: never through a proxy
}

func (h *authHTTP) setEnv(e authEnv) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil && !h.noProxy {
		h.client = e.client
	}
	if h.ua == "" {
		h.ua = e.userAgent
	}
	if h.observer == nil {
		h.observer = e.observer
	}
}

func (h *authHTTP) env() (*http.Client, string, Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil {
		if h.noProxy {
			h.client = newMetadataClient()
		} else {
			h.client = NewHTTPClient()
		}
	}
	if h.ua == "" {
		h.ua = defaultUserAgent()
	}
	return h.client, h.ua, h.observer
}

// do sends one request and returns the 2xx answer, or an *Error. Request
// headers (which may hold secrets) never reach the error.
func (h *authHTTP) do(ctx context.Context, endpoint, method, url string, header http.Header, body []byte) (int, http.Header, []byte, error) {
	client, ua, observer := h.env()
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
	req.Header.Set("User-Agent", ua)
	start := time.Now()
	resp, err := client.Do(req)
	traceAuthCall(ctx, endpoint, method, url, resp, err, start)
	if err != nil {
		if observer != nil {
			observer(RequestInfo{Endpoint: endpoint, Code: "error", Duration: time.Since(start)})
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, nil, nil, &Error{Endpoint: endpoint, Err: err}
	}
	defer resp.Body.Close()
	data, rerr := readBody(resp)
	if observer != nil {
		observer(RequestInfo{Endpoint: endpoint, Code: strconv.Itoa(resp.StatusCode), Duration: time.Since(start)})
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
	o.IAMEndpoint = strings.TrimRight(o.IAMEndpoint, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	return &iamAuth{o: o, h: authHTTP{client: o.HTTPClient, observer: o.Observer}, tokens: map[string]*iamToken{}}
}

type iamAuth struct {
	o      IAMPasswordOptions
	h      authHTTP
	sf     flight.Group[string, *iamToken]
	mu     sync.Mutex
	tokens map[string]*iamToken // by scope key
}

type iamToken struct {
	value     string
	projectID string
	refreshAt time.Time
}

func (a *iamAuth) setEnv(e authEnv) { a.h.setEnv(e) }

// scopeKey names the cache slot of a token: by project ID, by project name
// (for lookups), or the domain for calls scoped to no project.
func scopeKey(projectID, projectName string) string {
	switch {
	case projectID != "":
		return "id:" + projectID
	case projectName != "":
		return "name:" + projectName
	}
	return "domain"
}

func (a *iamAuth) Authenticate(ctx context.Context, req *http.Request, body []byte, projectID string) error {
	return a.authenticateIn(ctx, req, body, projectID, "")
}

// authenticateIn logs in at the IAM of region: the token of a project is
// issued by the IAM of the project's region.
func (a *iamAuth) authenticateIn(ctx context.Context, req *http.Request, _ []byte, projectID, region string) error {
	t, err := a.token(ctx, region, projectID, "")
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", t.value)
	return nil
}

func (a *iamAuth) lookupProject(ctx context.Context, region string) (string, error) {
	t, err := a.token(ctx, region, "", region)
	if err != nil {
		return "", err
	}
	if t.projectID == "" {
		return "", &Error{Endpoint: EndpointIAMToken, StatusCode: http.StatusCreated, Err: fmt.Errorf("token for project %q names no project ID", region)}
	}
	return t.projectID, nil
}

func (a *iamAuth) token(ctx context.Context, region, projectID, projectName string) (*iamToken, error) {
	key := scopeKey(projectID, projectName)
	a.mu.Lock()
	t := a.tokens[key]
	a.mu.Unlock()
	if t != nil && a.o.Now().Before(t.refreshAt) {
		return t, nil
	}
	return sharedFlight(ctx, &a.sf, key, EndpointIAMToken, func(ctx context.Context) (*iamToken, error) {
		return a.login(ctx, region, projectID, projectName)
	})
}

type iamScope struct {
	Project *struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"project,omitempty"`
	Domain *iamName `json:"domain,omitempty"`
}

type iamName struct {
	Name string `json:"name"`
}

func (a *iamAuth) loginBody(projectID, projectName string) []byte {
	type user struct {
		Name     string  `json:"name"`
		Password string  `json:"password"`
		Domain   iamName `json:"domain"`
	}
	var b struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User user `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope iamScope `json:"scope"`
		} `json:"auth"`
	}
	b.Auth.Identity.Methods = []string{"password"}
	b.Auth.Identity.Password.User = user{Name: a.o.UserName, Password: a.o.Password, Domain: iamName{a.o.DomainName}}
	if projectID == "" && projectName == "" {
		b.Auth.Scope.Domain = &iamName{a.o.DomainName}
	} else {
		b.Auth.Scope.Project = &struct {
			ID   string `json:"id,omitempty"`
			Name string `json:"name,omitempty"`
		}{ID: projectID, Name: projectName}
	}
	data, _ := json.Marshal(b) // strings only: cannot fail
	return data
}

func (a *iamAuth) login(ctx context.Context, region, projectID, projectName string) (*iamToken, error) {
	hdr := http.Header{"Content-Type": {"application/json;charset=UTF-8"}}
	status, respHdr, body, err := a.h.do(ctx, EndpointIAMToken, http.MethodPost, iamEndpointFor(a.o.IAMEndpoint, region)+"/v3/auth/tokens", hdr, a.loginBody(projectID, projectName))
	if err != nil {
		return nil, err
	}
	value := respHdr.Get("X-Subject-Token")
	if value == "" {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: errors.New("answer lacks X-Subject-Token")}
	}
	expires, pid, err := decodeTokenBody(body)
	if err != nil {
		return nil, err
	}
	now := a.o.Now()
	if !expires.After(now) {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: fmt.Errorf("token expired at %s on arrival; check the clock", expires.Format(time.RFC3339))}
	}
	if projectID != "" && pid != "" && pid != projectID {
		return nil, &Error{Endpoint: EndpointIAMToken, StatusCode: status, Err: fmt.Errorf("token is scoped to project %s, not %s", pid, projectID)}
	}
	t := &iamToken{value: value, projectID: pid, refreshAt: refreshAt(now, expires, 10, 30*time.Minute)}
	a.mu.Lock()
	a.tokens[scopeKey(projectID, projectName)] = t
	if projectName != "" && pid != "" {
		a.tokens[scopeKey(pid, "")] = t
	}
	a.mu.Unlock()
	return t, nil
}

func (a *iamAuth) Invalidate() {
	a.mu.Lock()
	clear(a.tokens)
	a.mu.Unlock()
}

// rejected drops the token req carried, wherever it is cached.
func (a *iamAuth) rejected(req *http.Request) {
	v := req.Header.Get("X-Auth-Token")
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, t := range a.tokens {
		if t.value == v {
			delete(a.tokens, k)
		}
	}
}

// defaultECSMetadataEndpoint is the link-local metadata service.
const defaultECSMetadataEndpoint = "http://169.254.169.254"

// metadataTokenTTL is asked for the optional metadata session token.
const metadataTokenTTL = "21600"

// NewECSMetadata signs with the temporary AK/SK of the ECS agency, read from
// the metadata service and refreshed well before they expire (when half
// their lifetime, at most 15 minutes, is left). Without HTTPClient it uses
// its own client that bypasses proxies.
func NewECSMetadata(o ECSMetadataOptions) Authenticator {
	if o.Endpoint == "" {
		o.Endpoint = defaultECSMetadataEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	return &ecsAuth{o: o, h: authHTTP{client: o.HTTPClient, observer: o.Observer, noProxy: true}}
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
