package kmsapi

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"
	"golang.org/x/time/rate"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/internal/regions"
)

// Defaults of CredentialOptions.
const (
	DefaultRequestsPerSecond = 10
	DefaultConcurrency       = 8
)

// Retry tunables, variables so tests can shrink them.
var (
	maxRetries     = 2
	retryBase      = 250 * time.Millisecond
	retryMaxDelay  = 4 * time.Second
	minAttemptTime = time.Second // deadline room needed besides the backoff to retry
)

// CredentialOptions configure a Credential. Zero values take the defaults.
type CredentialOptions struct {
	Name              string // for errors and logs
	Auth              Authenticator
	IAMEndpoint       string  // override; default the IAM endpoint of each call's region (regions.IAMEndpoint)
	RequestsPerSecond float64 // client-side rate limit; default 10
	Concurrency       int     // requests in flight; default 8
	HTTPClient        *http.Client
	Observer          Observer
	// PauseStore, if set, hands the pause on to the next Credential of the
	// same AK: after a reload, and with a directory after a restart.
	PauseStore *lockout.Store
	// Logger gets one warning per pause, and each API call at debug level.
	Logger log.Logger
	Now    func() time.Time // for tests; default time.Now
}

// Credential is what every target that uses one named credential shares: the
// authenticator, the rate limit, the cap on requests in flight, and the
// lockout gate that keeps a wrong secret from locking the AK.
type Credential struct {
	opts    CredentialOptions
	http    caller
	limiter *rate.Limiter
	sem     chan struct{}
	gate    *lockout.Gate
	waited  atomic.Int64 // nanoseconds spent in the rate limiter
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
	if o.Now == nil {
		o.Now = time.Now
	}
	// A burst of up to Concurrency lets VisitKeys send its remaining pages
	// together; the average stays at RequestsPerSecond.
	burst := o.Concurrency
	if o.RequestsPerSecond < float64(burst) {
		burst = max(int(math.Ceil(o.RequestsPerSecond)), 1)
	}
	c := &Credential{
		opts:    o,
		http:    newCaller(o.HTTPClient, logCalls(o.Logger, o.Name, o.Observer)),
		limiter: rate.NewLimiter(rate.Limit(o.RequestsPerSecond), burst),
		sem:     make(chan struct{}, o.Concurrency),
	}
	c.gate = newGate(o)
	return c, nil
}

// newCaller calls with client, NewHTTPClient() if nil, as
// kms_exporter/<version>.
func newCaller(client *http.Client, observer Observer) caller {
	if client == nil {
		client = NewHTTPClient()
	}
	return caller{client: client, userAgent: "kms_exporter/" + cmp.Or(version.Version, "unknown"), observer: observer}
}

// logCalls wraps next so that every API request, retries and logins
// included, is logged at debug level: what --log.level=debug is for.
func logCalls(logger log.Logger, credential string, next Observer) Observer {
	if logger == nil {
		return next
	}
	return func(i RequestInfo) {
		kv := []any{"msg", "API call", "credential", credential, "endpoint", i.Endpoint}
		if i.Region != "" {
			kv = append(kv, "region", i.Region)
		}
		level.Debug(logger).Log(append(kv, "status", i.Code, "duration", i.Duration.Round(time.Microsecond))...)
		if next != nil {
			next(i)
		}
	}
}

// Name is the credential's name from its options.
func (c *Credential) Name() string { return c.opts.Name }

// RateLimitWait is the total time calls with this credential have spent
// waiting for its client-side rate limit: it grows about as fast as the
// clock when the credential's calls need more than its requests per second.
func (c *Credential) RateLimitWait() time.Duration { return time.Duration(c.waited.Load()) }

// RequestsPerSecond and Burst are the credential's rate limit.
func (c *Credential) RequestsPerSecond() float64 { return c.opts.RequestsPerSecond }
func (c *Credential) Burst() int                 { return c.limiter.Burst() }

// waitLimit waits for the rate limit and adds the time spent to
// RateLimitWait, successful or not: a call given up while queued waited too.
func (c *Credential) waitLimit(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.limiter.Wait(ctx)
	d := time.Since(start)
	c.waited.Add(int64(d))
	return d, err
}

func (c *Credential) iamEndpoint(region string) string {
	return cmp.Or(c.opts.IAMEndpoint, regions.IAMEndpoint(region))
}

// do runs one call: the auth gate, then attempts with retries.
func (c *Credential) do(ctx context.Context, r *request) error {
	return c.run(ctx, r.endpoint, func(ctx context.Context) attempt { return c.send(ctx, r) })
}

// run wraps try, one attempt, with the auth gate and the retries.
func (c *Credential) run(ctx context.Context, endpoint string, try func(context.Context) attempt) error {
	t, err := c.gate.Enter(ctx)
	if p, ok := errors.AsType[*lockout.PausedError](err); ok {
		apitrace.Note(ctx, "%s: not sent: credential %s paused until %s after %v", endpoint, p.Credential, p.Until.UTC().Format(time.RFC3339), p.Cause)
		return err
	}
	if err != nil {
		return &Error{Endpoint: endpoint, Err: err}
	}
	err = c.retry(ctx, try)
	if v, f := verdict(err); c.gate.Leave(t, v, f) {
		c.opts.Auth.invalidate()
	}
	return err
}

// tokenExpiredCodes are the 401 codes after which a token or temporary key
// is fetched again and the call retried once.
var tokenExpiredCodes = map[string]bool{
	"APIGW.0307": true, "APIGW.0301": true, "KMS.0302": true, "KMS.0303": true,
}

// retry tries until an attempt succeeds, is not worth repeating, or
// maxRetries backoffs are spent or would not fit before the deadline.
func (c *Credential) retry(ctx context.Context, try func(context.Context) attempt) error {
	refreshed := false
	var backoff time.Duration
	for tries, retries := 1, 0; ; tries++ {
		a := try(ctx)
		trace(ctx, a, tries, backoff)
		if a.err == nil {
			return nil
		}
		e, _ := errors.AsType[*Error](a.err)
		if a.req != nil && !refreshed && e != nil && e.StatusCode == http.StatusUnauthorized &&
			tokenExpiredCodes[e.Code] && c.opts.Auth.rejected(a.req) {
			// The token or temporary key expired early: fetch a new one and
			// try once more. This is not one of the retries.
			refreshed, backoff = true, 0
			continue
		}
		if !a.retry || retries >= maxRetries || ctx.Err() != nil {
			return a.err
		}
		backoff = retryBase << retries
		if backoff > retryMaxDelay || backoff <= 0 {
			backoff = retryMaxDelay
		}
		backoff = backoff/2 + rand.N(backoff/2+1)
		retries++
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < backoff+minAttemptTime {
			return a.err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return a.err
		}
	}
}

// send makes one HTTP attempt of r under the rate limit and the in-flight cap.
func (c *Credential) send(ctx context.Context, r *request) attempt {
	call := &apitrace.Event{Endpoint: r.endpoint, Method: r.method, URL: r.url}
	fail := func(err error) attempt {
		return attempt{err: &Error{Endpoint: r.endpoint, Err: cmp.Or(ctx.Err(), err)}, call: call}
	}
	var err error
	if call.RateWait, err = c.waitLimit(ctx); err != nil {
		return fail(err)
	}
	waited := time.Now()
	select {
	case c.sem <- struct{}{}:
		call.SlotWait = time.Since(waited)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	defer func() { <-c.sem }()
	return c.http.exchange(ctx, r, call, func(req *http.Request) error {
		if r.method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json;charset=UTF-8")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		if r.projectID != "" {
			req.Header.Set("X-Project-Id", r.projectID)
		}
		return c.opts.Auth.authenticate(ctx, c.http, req, r.body, r.projectID, r.region)
	})
}
