package kmsapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/version"
	"golang.org/x/time/rate"
)

// Defaults of CredentialOptions.
const (
	DefaultRequestsPerSecond = 10
	DefaultConcurrency       = 8
	defaultAuthPauseMin      = 30 * time.Second
	defaultAuthPauseMax      = 5 * time.Minute
)

// Tunables, variables so tests can shrink them.
var (
	maxBodyBytes   int64 = 32 << 20
	maxValueBytes  int64 = 8 << 20 // one JSON value: see cappedBody
	maxRetries           = 2
	retryBase            = 250 * time.Millisecond
	retryMaxDelay        = 4 * time.Second
	minAttemptTime       = time.Second // deadline room needed besides the backoff to retry
)

// NewHTTPClient returns the client Credentials use by default: certificates
// verified, proxies from the environment, bounded dial and handshake times,
// and enough idle connections per host for the default concurrency. Calls
// are bounded by their context; the overall timeout is only a backstop.
func NewHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: time.Minute,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
		},
	}
}

// authEnv is what a Credential lends its authenticator for the
// authenticator's own calls (IAM login, metadata), unless the
// authenticator's options set them.
type authEnv struct {
	client    *http.Client
	userAgent string
	observer  Observer
}

type envSetter interface{ setEnv(authEnv) }

// rejecter is implemented by authenticators whose secrets expire (tokens,
// temporary keys): rejected drops what req was authenticated with, so a
// retry fetches fresh ones without dropping a newer one another call got.
type rejecter interface{ rejected(req *http.Request) }

// projectLooker is implemented by authenticators that learn a project ID
// while logging in (IAM password: a token scoped to the project name).
type projectLooker interface {
	lookupProject(ctx context.Context, region string) (string, error)
}

// Credential is what every target that uses one named credential shares: the
// authenticator, the rate limit, the cap on requests in flight, and the pause
// after an authentication failure that keeps a wrong secret from locking the AK.
//
// Until the credential has been accepted once, and again after every
// authentication failure once the pause is over, a single call goes through
// and concurrent ones wait for its answer: with a wrong secret only that one
// call reaches the API, the waiting ones then get the paused error.
type Credential struct {
	opts    CredentialOptions
	limiter *rate.Limiter
	sem     chan struct{}
	gate    gate
	waited  atomic.Int64 // nanoseconds spent in the rate limiter
	pauseID string       // name of the state in opts.PauseStore
}

// NewCredential builds a Credential.
func NewCredential(o CredentialOptions) (*Credential, error) {
	if o.Auth == nil {
		return nil, errors.New("credential " + o.Name + ": no authenticator")
	}
	o.IAMEndpoint = strings.TrimRight(o.IAMEndpoint, "/")
	if !(o.RequestsPerSecond > 0) {
		o.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient()
	}
	o.UserAgent = cmp.Or(o.UserAgent, defaultUserAgent())
	o.AuthPauseMin = cmp.Or(max(o.AuthPauseMin, 0), defaultAuthPauseMin)
	o.AuthPauseMax = max(cmp.Or(max(o.AuthPauseMax, 0), defaultAuthPauseMax), o.AuthPauseMin)
	if o.Now == nil {
		o.Now = time.Now
	}
	// A burst of up to Concurrency lets ListKeys send its remaining pages
	// together; the average stays at RequestsPerSecond.
	burst := o.Concurrency
	if o.RequestsPerSecond < float64(burst) {
		burst = max(int(math.Ceil(o.RequestsPerSecond)), 1)
	}
	c := &Credential{
		opts:    o,
		limiter: rate.NewLimiter(rate.Limit(o.RequestsPerSecond), burst),
		sem:     make(chan struct{}, o.Concurrency),
	}
	c.restorePause()
	c.opts.Observer = logCalls(o.Logger, o.Name, o.Observer)
	if s, ok := o.Auth.(envSetter); ok {
		s.setEnv(authEnv{client: o.HTTPClient, userAgent: o.UserAgent, observer: c.opts.Observer})
	}
	return c, nil
}

// defaultUserAgent is "kms_exporter/<version>".
func defaultUserAgent() string {
	v := version.Version
	if v == "" {
		v = "unknown"
	}
	return "kms_exporter/" + v
}

// Name is the credential's name from its options.
func (c *Credential) Name() string { return c.opts.Name }

// request is one API call; the Credential turns it into HTTP attempts.
type request struct {
	endpoint  string
	region    string // for the Observer; "" for IAM
	method    string
	url       string
	body      []byte
	projectID string // X-Project-Id and the scope to authenticate for; "" for none
	answerID  string // X-Request-Id of the last answer, set by send

	// decode reads a successful answer straight from the response: body
	// (capped at maxBodyBytes) of size bytes, -1 if unknown. Big answers
	// (key pages) are then never held in memory whole. It runs again from
	// scratch on every attempt, so it must start over each time. Its error
	// fails the call without a retry, unless reading body failed.
	decode func(body io.Reader, size int64) error
}

// attempt is the outcome of one try of a call.
type attempt struct {
	err   error
	retry bool          // worth another try (429, 5xx, connection error)
	req   *http.Request // the request sent, for rejecter
	sent  bool          // the API answered (err is a status, not a local failure)
	call  *callInfo     // what the attempt was, for a Trace; nil when not from send
}

// tokenExpiredCodes are the 401 codes after which a token or temporary key
// is fetched again and the call retried once.
var tokenExpiredCodes = map[string]bool{
	"APIGW.0307": true, "APIGW.0301": true, "KMS.0302": true, "KMS.0303": true,
}

// do runs one call: the auth gate, then attempts with retries.
func (c *Credential) do(ctx context.Context, r *request) error {
	return c.run(ctx, r.endpoint, func(ctx context.Context) attempt { return c.send(ctx, r) })
}

// run wraps try, one attempt, with the auth gate, the retry policy and the
// token refresh.
func (c *Credential) run(ctx context.Context, endpoint string, try func(context.Context) attempt) error {
	gen, probe, err := c.enter(ctx, endpoint)
	if err != nil {
		return err
	}
	err = c.retry(ctx, try)
	c.leave(gen, probe, err)
	return err
}

func (c *Credential) retry(ctx context.Context, try func(context.Context) attempt) error {
	refreshed := false
	tries, backoff := 0, time.Duration(0)
	for n := 0; ; n++ {
		a := try(ctx)
		tries++
		traceAttempt(ctx, a, tries, backoff)
		backoff = 0
		if a.err == nil {
			return nil
		}
		if e, ok := asError(a.err); ok && a.sent && e.StatusCode == http.StatusUnauthorized && !refreshed && tokenExpiredCodes[e.Code] {
			if rj, ok := c.opts.Auth.(rejecter); ok && a.req != nil {
				// The token or temporary key expired early: fetch a new
				// one and try once more. This is not one of the retries.
				rj.rejected(a.req)
				refreshed = true
				n--
				continue
			}
		}
		if !a.retry || n >= maxRetries || ctx.Err() != nil {
			return a.err
		}
		d := retryBase << n
		if d > retryMaxDelay || d <= 0 {
			d = retryMaxDelay
		}
		d = d/2 + rand.N(d/2+1)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+minAttemptTime {
			return a.err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			backoff = d
		case <-ctx.Done():
			t.Stop()
			return a.err
		}
	}
}

// send makes one HTTP attempt of r under the rate limit and the in-flight cap.
func (c *Credential) send(ctx context.Context, r *request) (res attempt) {
	call := &callInfo{endpoint: r.endpoint, method: r.method, url: r.url}
	defer func() { res.call = call }()
	fail := func(err error) attempt { return attempt{err: &Error{Endpoint: r.endpoint, Err: err}} }
	rateWait, err := c.waitLimit(ctx)
	call.rateWait = rateWait
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(err)
	}
	waited := time.Now()
	select {
	case c.sem <- struct{}{}:
		call.slotWait = time.Since(waited)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	defer func() { <-c.sem }()

	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, rd)
	if err != nil {
		return fail(err)
	}
	if r.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.projectID != "" && r.endpoint != EndpointIAMProjects {
		req.Header.Set("X-Project-Id", r.projectID)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if err := authenticate(ctx, c.opts.Auth, req, r.body, r.projectID, r.region); err != nil {
		if e, ok := asError(err); ok {
			// A login or metadata call answered: a 401 there pauses the
			// credential like a 401 from KMS.
			return attempt{err: err, retry: retryableStatus(e.StatusCode), sent: e.StatusCode != 0}
		}
		return fail(err)
	}

	start := time.Now()
	defer func() { call.took = time.Since(start) }()
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		c.observe(r, "error", time.Since(start))
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return attempt{err: &Error{Endpoint: r.endpoint, Err: err}, retry: ctx.Err() == nil && !isCertError(err), req: req}
	}
	// Closing frees the connection also when the body was not read to the
	// end (over the cap, or a read error).
	defer resp.Body.Close()
	r.answerID = resp.Header.Get("X-Request-Id")
	call.status, call.reqID = resp.StatusCode, r.answerID
	return c.answer(ctx, r, req, resp, start)
}

// answer reads the answer to req: an error status, or a successful answer
// for r.decode.
func (c *Credential) answer(ctx context.Context, r *request, req *http.Request, resp *http.Response, start time.Time) attempt {
	body := capBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(body)
		c.observe(r, strconv.Itoa(resp.StatusCode), time.Since(start))
		return attempt{err: parseError(r.endpoint, resp.StatusCode, resp.Header, data),
			retry: retryableStatus(resp.StatusCode), req: req, sent: true}
	}
	// The observed duration includes decoding, which is interleaved with
	// reading (a few ms for a 1000-key page).
	err := r.decode(body, resp.ContentLength)
	c.observe(r, strconv.Itoa(resp.StatusCode), time.Since(start))
	switch {
	case err == nil:
		return attempt{req: req, sent: true}
	case body.err != nil:
		// The transfer broke: retried like a connection error, unless the
		// answer is over the cap or the call is out of time.
		if ctx.Err() != nil {
			body.err = ctx.Err()
		}
		e := &Error{Endpoint: r.endpoint, StatusCode: resp.StatusCode, RequestID: r.answerID, Err: body.err}
		return attempt{err: e, retry: ctx.Err() == nil && !errors.Is(body.err, errBodyTooLarge), req: req, sent: true}
	}
	// A malformed answer comes back the same when asked again.
	if e, ok := asError(err); ok && e.RequestID == "" {
		e.RequestID = r.answerID
	} else if !ok {
		err = &Error{Endpoint: r.endpoint, StatusCode: resp.StatusCode, RequestID: r.answerID, Err: err}
	}
	return attempt{err: err, req: req, sent: true}
}

// cappedBody is a response body read no further than maxBodyBytes. It
// remembers its read error, so that send can tell a broken transfer
// (retried) from a malformed answer (not).
type cappedBody struct {
	r    io.Reader
	left int64 // bytes allowed before the cap
	err  error // the first error other than io.EOF
}

func capBody(resp *http.Response) *cappedBody {
	b := &cappedBody{r: resp.Body, left: maxBodyBytes}
	if resp.ContentLength > maxBodyBytes {
		b.err = capExceeded()
	}
	return b
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// A decoder asks for this much room at once only to hold one value that
	// large. No value of an API answer comes near it, and refusing it keeps
	// the decoder's buffer, which grows by doubling, to about the cap.
	if int64(len(p)) > maxValueBytes {
		b.err = bodyTooLarge(fmt.Sprintf("response body holds a value of more than %d bytes", maxValueBytes))
		return 0, b.err
	}
	// Read at most one byte past the cap: enough to know it is exceeded.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case b.left < 0:
		b.err = capExceeded()
	case err != nil && err != io.EOF:
		b.err = fmt.Errorf("reading response body: %w", err)
	default:
		return n, err
	}
	return n, b.err
}

// readBody reads a whole answer, up to the cap.
func readBody(resp *http.Response) ([]byte, error) {
	return io.ReadAll(capBody(resp))
}

func (c *Credential) observe(r *request, code string, d time.Duration) {
	if c.opts.Observer != nil {
		c.opts.Observer(RequestInfo{Region: r.region, Endpoint: r.endpoint, Code: code, Duration: d})
	}
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func isCertError(err error) bool {
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce)
}

// errBodyTooLarge matches (errors.Is) every answer refused for its size:
// not worth asking again.
var errBodyTooLarge = errors.New("response body too large")

type bodyTooLarge string

func (e bodyTooLarge) Error() string        { return string(e) }
func (e bodyTooLarge) Is(target error) bool { return target == errBodyTooLarge }

func capExceeded() error {
	return bodyTooLarge(fmt.Sprintf("response body exceeds %d bytes", maxBodyBytes))
}
