package kmsfake

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// Server is a running fake. Every method is safe for concurrent use.
//
// Routes, all on URL():
//
//	GET  /v1.0/{project_id}/kms/user-quotas
//	GET  /v1.0/{project_id}/kms/user-instances
//	POST /v1.0/{project_id}/kms/resource_instances/action
//	GET  /v2/{project_id}/kms/regions
//	POST /v3/auth/tokens
//	POST /v3.0/OS-AUTH/id-token/tokens
//	GET  /v3/projects
//	GET  /v3/auth/projects
//	PUT  /meta-data/latest/api/token
//	GET  /openstack/latest/securitykey
//
// Choices where the documentation leaves room:
//   - matches on resource_name select keys whose name contains the value
//     (case-sensitive substring, the "fuzzy" search of the console).
//   - A tag filter with no values selects keys carrying the tag at all.
//   - limit/offset must be JSON strings; with action count they are refused
//     (400 KMS.0418).
//   - An unknown project in the URL, or an X-Project-Id header that differs
//     from it, answers 403 KMS.0321 once the caller is authenticated.
//   - An unknown path under /v1.0/{project_id}/kms/ or /v2/{project_id}/kms/
//     answers 400 KMS.0201; any other unknown path or method 404 APIGW.0101.
//   - Expired tokens answer 401 KMS.0303 on KMS paths and 401 APIGW.0307 on
//     /v3/projects; unknown tokens and bad signatures 401 APIGW.0301.
//   - Once a metadata session token has been issued (PUT .../api/token),
//     /openstack/latest/securitykey requires a valid X-Metadata-Token, like
//     an ECS with IMDSv2 enforced; before that it answers without one.
//   - Faults act before authentication: Status, ThrottleRate, Malformed and
//     HugeBody answer any request; Truncated cuts the real successful answer.
//     A Hang or Latency cut short by Close drops the connection unanswered.
//   - GET /v3/auth/projects lists Projects then OtherProjects, in pages
//     of SetProjectPageSize linked by links.next (?marker=<last id>).
//   - Tokens may be scoped to the domain (no project): KMS refuses them
//     (403 KMS.0321), IAM project listings accept them.
//   - The rate limit counts authenticated KMS and IAM project requests per
//     AK or IAM user, on the fake's clock, with a burst of one second's worth.
type Server struct {
	ts        *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once
	reqPrefix string
	reqSeq    atomic.Uint64
	altSeq    atomic.Uint64

	// Fixed at start.
	projects     map[string]*project
	order        []*project
	aks          map[string]AccessKey
	users        []User
	agency       *AccessKey
	crossRegions []string
	others       []IAMProject
	domainID     string
	domainName   string

	mu          sync.Mutex
	faults      map[string]Fault
	throttleAcc map[string]float64
	counts      map[string]int
	total       int
	encoding    Encoding
	detail      Detail
	onKeyPage   func(projectID string, offset int)
	oidc        oidcIssuer
	tokenTTL    time.Duration
	tokens      map[string]*token
	metaTokens  map[string]time.Time
	rps         float64
	limiters    map[string]*rate.Limiter
	projectPage int             // GET /v3/auth/projects page size; 0: one page
	hidden      map[string]bool // project IDs GET /v3/auth/projects leaves out
	regionsCap  int             // largest page of GET /v2/{project_id}/kms/regions; 0: none
	now         func() time.Time
}

type token struct {
	projectID string
	user      string
	expires   time.Time
	revoked   bool
}

// Start serves s over plain HTTP on 127.0.0.1.
func Start(s Scenario) *Server {
	srv := newServer(s)
	srv.ts = httptest.NewUnstartedServer(srv)
	srv.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS rejections are expected
	srv.ts.Start()
	return srv
}

// New returns a fake of s that listens nowhere: it is reached through
// InMemoryClient, or as an http.Handler. Created in a testing/synctest
// bubble, it then runs wholly on the bubble's clock.
func New(s Scenario) *Server { return newServer(s) }

// StartTLS serves s over TLS with httptest's self-signed certificate; only
// Client() (or a client given that certificate) trusts it.
func StartTLS(s Scenario) *Server {
	srv := newServer(s)
	srv.ts = httptest.NewUnstartedServer(srv)
	srv.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.ts.StartTLS()
	return srv
}

func newServer(sc Scenario) *Server {
	s := &Server{
		closing:      make(chan struct{}),
		reqPrefix:    randomHex(8),
		projects:     map[string]*project{},
		aks:          map[string]AccessKey{},
		users:        append([]User(nil), sc.Users...),
		crossRegions: append([]string(nil), sc.CrossRegions...),
		others:       append([]IAMProject(nil), sc.OtherProjects...),
		faults:       map[string]Fault{},
		throttleAcc:  map[string]float64{},
		counts:       map[string]int{},
		tokenTTL:     24 * time.Hour,
		tokens:       map[string]*token{},
		metaTokens:   map[string]time.Time{},
		limiters:     map[string]*rate.Limiter{},
		oidc:         newOIDCIssuer(sc.IdentityProviders),
		now:          time.Now,
	}
	for _, p := range sc.Projects {
		pp := newProject(p)
		if _, dup := s.projects[p.ID]; !dup {
			s.projects[p.ID] = pp
		}
		s.order = append(s.order, pp)
		if s.domainID == "" {
			for _, k := range p.Keys {
				if k.DomainID != "" {
					s.domainID = k.DomainID
					break
				}
			}
		}
	}
	if s.domainID == "" {
		s.domainID = "0a5e8c1b2d3f4a6b7c8d9e0f1a2b3c4d"
	}
	s.domainName = "fake-account"
	if len(sc.Users) > 0 {
		s.domainName = sc.Users[0].Domain
	}
	for _, ak := range sc.AccessKeys {
		s.aks[ak.AK] = ak
	}
	if sc.Agency != nil {
		a := *sc.Agency
		s.agency = &a
		s.aks[a.AK] = a
	}
	return s
}

// URL is the base URL of every API the fake serves; a fake from New has
// one that is not on any network.
func (s *Server) URL() string {
	if s.ts == nil {
		return "http://kmsfake.invalid"
	}
	return s.ts.URL
}

// Client returns an HTTP client that trusts the fake's certificate; for a
// fake from New, InMemoryClient.
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return s.InMemoryClient()
	}
	return s.ts.Client()
}

// Close stops the server, releasing hanging requests first.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	if s.ts != nil {
		s.ts.Close()
	}
}

// SetFault installs f for endpoint (a kmsapi.Endpoint* name; "" for every
// endpoint). A fault for a named endpoint takes precedence over "".
func (s *Server) SetFault(endpoint string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = f
	delete(s.throttleAcc, endpoint)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string]Fault{}
	s.throttleAcc = map[string]float64{}
}

// Requests counts the requests received for endpoint ("" for all, unknown
// paths included), rejected ones included.
func (s *Server) Requests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if endpoint == "" {
		return s.total
	}
	return s.counts[endpoint]
}

// ResetRequests zeroes the request counters.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int{}
	s.total = 0
}

// SetEncoding chooses how numbers are encoded from now on.
func (s *Server) SetEncoding(e Encoding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.encoding = e
}

// SetTokenTTL sets the lifetime of IAM tokens issued from now on (default 24h).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// ExpireTokens makes every token issued so far answer 401 as expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}

// SetRateLimit limits requests per second per AK or user, answering 429
// APIGW.0308 beyond it like the real gateway; 0 turns it off (the default).
func (s *Server) SetRateLimit(rps float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rps = rps
	s.limiters = map[string]*rate.Limiter{}
}

// SetRegionsPageCap makes the regions list answer at most n regions a
// page, whatever limit is asked, as a server may; 0 (the default) honours
// the limit.
func (s *Server) SetRegionsPageCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.regionsCap = n
}

// SetClock sets the fake's clock, used for X-Sdk-Date freshness, token and
// metadata credential expiry, and the rate limit. nil restores time.Now.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// useStrings tells whether this response encodes numbers as strings.
func (s *Server) useStrings() bool {
	s.mu.Lock()
	e := s.encoding
	s.mu.Unlock()
	switch e {
	case Numeric:
		return false
	case Strings:
		return true
	}
	return s.altSeq.Add(1)%2 == 0
}

// allow applies the rate limit to one principal.
func (s *Server) allow(principal string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rps <= 0 {
		return true
	}
	l, ok := s.limiters[principal]
	if !ok {
		burst := int(s.rps)
		if float64(burst) < s.rps {
			burst++
		}
		l = rate.NewLimiter(rate.Limit(s.rps), max(burst, 1))
		s.limiters[principal] = l
	}
	return l.AllowN(s.now(), 1)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// route names the endpoint of a request and the project in its path.
type route struct {
	endpoint  string
	projectID string
	known     bool // path and method are served
	kmsPath   bool // under a KMS prefix, for the KMS.0201 answer
}

func classify(r *http.Request) route {
	p := r.URL.Path
	parts := strings.Split(strings.Trim(p, "/"), "/")
	m := r.Method
	switch {
	case len(parts) >= 3 && (parts[0] == "v1.0" || parts[0] == "v2") && parts[2] == "kms" && parts[1] != "":
		rt := route{projectID: parts[1], kmsPath: true}
		rest := strings.Join(parts[3:], "/")
		switch {
		case parts[0] == "v1.0" && rest == "user-quotas":
			rt.endpoint, rt.known = kmsapi.EndpointQuotas, m == http.MethodGet
		case parts[0] == "v1.0" && rest == "user-instances":
			rt.endpoint, rt.known = kmsapi.EndpointInstances, m == http.MethodGet
		case parts[0] == "v1.0" && rest == "resource_instances/action":
			rt.endpoint, rt.known = kmsapi.EndpointResourceInstances, m == http.MethodPost
		case parts[0] == "v2" && rest == "regions":
			rt.endpoint, rt.known = kmsapi.EndpointRegions, m == http.MethodGet
		}
		return rt
	case p == "/v3/auth/tokens" || p == idTokenPath:
		return route{endpoint: kmsapi.EndpointIAMToken, known: m == http.MethodPost}
	case p == "/v3/auth/projects":
		return route{endpoint: kmsapi.EndpointIAMProjectList, known: m == http.MethodGet}
	case p == "/v3/projects":
		return route{endpoint: kmsapi.EndpointIAMProjects, known: m == http.MethodGet}
	case p == "/meta-data/latest/api/token":
		return route{endpoint: kmsapi.EndpointECSMetadata, known: m == http.MethodPut}
	case p == "/openstack/latest/securitykey":
		return route{endpoint: kmsapi.EndpointECSMetadata, known: m == http.MethodGet}
	}
	return route{}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.reqPrefix + strconv.FormatUint(s.reqSeq.Add(1), 16)
	rw := &responder{w: w, reqID: reqID}
	w.Header().Set("X-Request-Id", reqID)

	rt := classify(r)
	s.mu.Lock()
	s.total++
	if rt.endpoint != "" {
		s.counts[rt.endpoint]++
	}
	s.mu.Unlock()

	if !rt.known {
		if rt.kmsPath && rt.endpoint == "" {
			rw.kmsError(http.StatusBadRequest, "KMS.0201", "The request URL is invalid.")
			return
		}
		rw.apigwError(http.StatusNotFound, "APIGW.0101", "The API does not exist or has not been published in the environment")
		return
	}

	f, faulty := s.faultFor(rt.endpoint)
	if faulty {
		if !s.wait(r, f.Latency) {
			panic(http.ErrAbortHandler) // drop the connection: no answer at all
		}
		if f.Hang {
			s.wait(r, -1)
			panic(http.ErrAbortHandler)
		}
		if f.Status != 0 {
			rw.statusError(f.Status, f.ErrorCode, f.ErrorMessage)
			return
		}
		if f.ThrottleRate > 0 && s.throttleNow(rt.endpoint, f.ThrottleRate) {
			rw.throttled(20)
			return
		}
		if f.Malformed {
			rw.raw(http.StatusOK, []byte("<html><head><title>Service Unavailable</title></head><body>upstream unavailable</body></html>\n"))
			return
		}
		if f.HugeBody > 0 {
			rw.huge(f.HugeBody)
			return
		}
		if f.Truncated {
			rw.truncate = true
		}
	}
	s.serve(rw, r, rt)
}

func (s *Server) faultFor(endpoint string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.faults[endpoint]; ok {
		return f, true
	}
	f, ok := s.faults[""]
	return f, ok
}

// throttleNow spreads rate over requests deterministically: an accumulator
// that fires each time it reaches one.
func (s *Server) throttleNow(endpoint string, rate float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.throttleAcc[endpoint] + rate
	fire := acc >= 1-1e-9
	if fire {
		acc--
	}
	s.throttleAcc[endpoint] = acc
	return fire
}

// wait sleeps d (forever if d < 0) unless the request is cancelled or the
// server closes; it reports whether the full time passed.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d == 0 {
		return true
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-r.Context().Done():
	case <-s.closing:
	}
	return false
}

// responder writes answers in the shapes the real services use.
type responder struct {
	w        http.ResponseWriter
	reqID    string
	truncate bool // Truncated fault: cut successful bodies in half
}

func (rw *responder) raw(status int, body []byte) {
	if rw.truncate && status/100 == 2 {
		body = body[:len(body)/2]
	}
	h := rw.w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	rw.w.WriteHeader(status)
	rw.w.Write(body)
}

func (rw *responder) json(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rw.kmsError(http.StatusInternalServerError, "KMS.0101", "Internal error.")
		return
	}
	rw.raw(status, b)
}

// kmsError is the KMS shape: {"error":{"error_code","error_msg"}}.
func (rw *responder) kmsError(status int, code, msg string) {
	type e struct {
		Code string `json:"error_code"`
		Msg  string `json:"error_msg"`
	}
	rw.json(status, struct {
		Error e `json:"error"`
	}{e{code, msg}})
}

// apigwError is the API Gateway shape: flat, with the request ID.
func (rw *responder) apigwError(status int, code, msg string) {
	rw.json(status, struct {
		Code  string `json:"error_code"`
		Msg   string `json:"error_msg"`
		ReqID string `json:"request_id"`
	}{code, msg, rw.reqID})
}

// errorCode writes code in the shape its prefix belongs to.
func (rw *responder) errorCode(status int, code, msg string) {
	if strings.HasPrefix(code, "APIGW.") {
		rw.apigwError(status, code, msg)
		return
	}
	rw.kmsError(status, code, msg)
}

func (rw *responder) throttled(limit int) {
	rw.apigwError(http.StatusTooManyRequests, "APIGW.0308",
		"The throttling threshold has been reached: policy user over ratelimit,limit:"+strconv.Itoa(limit)+",time:1 second")
}

// statusError answers a Status fault with the body the real service gives;
// code and message, when set, replace its error_code and error_msg.
func (rw *responder) statusError(status int, code, message string) {
	var defCode, msg string
	switch status {
	case http.StatusBadRequest:
		defCode, msg = "KMS.0308", "Invalid request parameter."
	case http.StatusUnauthorized:
		defCode, msg = "APIGW.0301", "Incorrect IAM authentication information"
	case http.StatusForbidden:
		defCode, msg = "KMS.0306", "No permission to perform the operation."
	case http.StatusNotFound:
		defCode, msg = "APIGW.0101", "The API does not exist or has not been published in the environment"
	case http.StatusTooManyRequests:
		rw.errorCode(status, cmp.Or(code, "APIGW.0308"), cmp.Or(message, "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second"))
		return
	case http.StatusBadGateway:
		defCode, msg = "APIGW.0202", "Backend unavailable"
	case http.StatusGatewayTimeout:
		defCode, msg = "APIGW.0203", "Backend timeout"
	default:
		defCode, msg = "KMS.0101", "Internal error."
	}
	rw.errorCode(status, cmp.Or(code, defCode), cmp.Or(message, msg))
}

// huge streams a 200 of n bytes: one JSON object with a long padding string.
func (rw *responder) huge(n int64) {
	const head, tail = `{"padding":"`, `"}`
	h := rw.w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Content-Length", strconv.FormatInt(max(n, int64(len(head)+len(tail))), 10))
	rw.w.WriteHeader(http.StatusOK)
	if _, err := rw.w.Write([]byte(head)); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for left := n - int64(len(head)+len(tail)); left > 0; {
		c := chunk
		if int64(len(c)) > left {
			c = c[:left]
		}
		if _, err := rw.w.Write(c); err != nil {
			return
		}
		left -= int64(len(c))
	}
	rw.w.Write([]byte(tail))
}
