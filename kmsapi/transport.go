package kmsapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
)

// Tunables, variables so tests can shrink them.
var (
	maxBodyBytes  int64 = 32 << 20
	maxValueBytes int64 = 8 << 20 // one JSON value: see cappedBody
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

// decodeFunc reads a 2xx answer straight from the response, body being
// resp.Body capped at maxBodyBytes: big answers (key pages) are then never
// held in memory whole. It runs again from scratch on every attempt. Its
// error fails the call without a retry, unless reading body failed.
type decodeFunc func(resp *http.Response, body io.Reader) error

// request is one API call, or one call of an authenticator's own.
type request struct {
	endpoint  string
	region    string // for the Observer, and whose IAM authenticates the call; "" for IAM and metadata
	method    string
	url       string
	header    http.Header // besides User-Agent
	body      []byte
	projectID string // X-Project-Id and the scope to authenticate for; "" for none
	decode    decodeFunc
}

// attempt is the outcome of one try of a call.
type attempt struct {
	err   error
	retry bool            // worth another try (429, 5xx, connection error)
	req   *http.Request   // the request sent, for rejecter; nil when none was
	call  *apitrace.Event // what the attempt was, for a trace; nil when not an HTTP attempt
}

// caller makes the HTTP requests of a Credential and of its authenticator.
type caller struct {
	client    *http.Client
	userAgent string
	observer  Observer
}

// exchange sends r, after prepare (if set) has authenticated it, and reads
// the answer: an error status becomes an *Error, a 2xx answer goes to
// r.decode. call gets what a Trace shows of the attempt.
func (h caller) exchange(ctx context.Context, r *request, call *apitrace.Event, prepare func(*http.Request) error) attempt {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		return attempt{err: &Error{Endpoint: r.endpoint, Err: withoutUserinfo(err)}, call: call}
	}
	maps.Copy(req.Header, r.header)
	req.Header.Set("User-Agent", h.userAgent)
	if prepare != nil {
		if err := prepare(req); err != nil {
			if e, ok := errors.AsType[*Error](err); ok {
				// A login or metadata call failed: a 401 there pauses the
				// credential like a 401 from KMS.
				return attempt{err: err, retry: retryableStatus(e.StatusCode), call: call}
			}
			return attempt{err: &Error{Endpoint: r.endpoint, Err: err}, call: call}
		}
	}
	start, code := time.Now(), "error"
	defer func() {
		// The duration includes decoding, which is interleaved with reading.
		call.Took = time.Since(start)
		if h.observer != nil {
			h.observer(RequestInfo{Region: r.region, Endpoint: r.endpoint, Code: code, Duration: call.Took})
		}
	}()
	resp, err := h.client.Do(req)
	if err != nil {
		err = withoutUserinfo(cmp.Or(ctx.Err(), err))
		certErr := errors.As(err, new(*tls.CertificateVerificationError))
		return attempt{err: &Error{Endpoint: r.endpoint, Err: err}, retry: ctx.Err() == nil && !certErr, req: req, call: call}
	}
	// Closing frees the connection also when the body was not read to the
	// end (over the cap, or a read error).
	defer resp.Body.Close()
	code, call.Status, call.RequestID = strconv.Itoa(resp.StatusCode), resp.StatusCode, resp.Header.Get("X-Request-Id")
	a := answer(ctx, r, resp)
	a.req, a.call = req, call
	return a
}

// do makes an authenticator's own call (IAM login, metadata): one attempt,
// traced as the first.
func (h caller) do(ctx context.Context, r *request) error {
	a := h.exchange(ctx, r, &apitrace.Event{Endpoint: r.endpoint, Method: r.method, URL: r.url}, nil)
	trace(ctx, a, 1, 0)
	return a.err
}

// trace records try n (1 for the first) of a call, made after waiting
// backoff, in the trace ctx carries.
func trace(ctx context.Context, a attempt, n int, backoff time.Duration) {
	if t := apitrace.From(ctx); t != nil && a.call != nil {
		e := *a.call
		e.Attempt, e.Backoff = n, backoff
		if a.err != nil {
			e.Err = a.err.Error()
		}
		t.Add(e)
	}
}

// answer reads resp: an error status, or a 2xx answer for r.decode.
func answer(ctx context.Context, r *request, resp *http.Response) attempt {
	body := &cappedBody{r: resp.Body, left: maxBodyBytes}
	if resp.ContentLength > maxBodyBytes {
		body.err = capExceeded()
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(body)
		return attempt{err: parseError(r.endpoint, resp.StatusCode, resp.Header, data), retry: retryableStatus(resp.StatusCode)}
	}
	err := r.decode(resp, body)
	if err == nil {
		return attempt{}
	}
	e, ok := errors.AsType[*Error](err)
	if !ok || body.err != nil {
		e = &Error{Endpoint: r.endpoint, Err: err}
	}
	e.StatusCode, e.RequestID = resp.StatusCode, cmp.Or(e.RequestID, resp.Header.Get("X-Request-Id"))
	if body.err == nil {
		// A malformed answer comes back the same when asked again.
		return attempt{err: e}
	}
	// The transfer broke: retried like a connection error, unless the
	// answer is over the cap or the call is out of time.
	e.Err = cmp.Or(ctx.Err(), body.err)
	return attempt{err: e, retry: ctx.Err() == nil && !errors.Is(body.err, errBodyTooLarge)}
}

// cappedBody is a response body read no further than maxBodyBytes. It
// remembers its read error, so that answer can tell a broken transfer
// (retried) from a malformed answer (not).
type cappedBody struct {
	r    io.Reader
	left int64 // bytes allowed before the cap
	err  error // the first error other than io.EOF
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

// errBodyTooLarge matches (errors.Is) every answer refused for its size:
// not worth asking again.
var errBodyTooLarge = errors.New("response body too large")

type bodyTooLarge string

func (e bodyTooLarge) Error() string        { return string(e) }
func (e bodyTooLarge) Is(target error) bool { return target == errBodyTooLarge }

func capExceeded() error {
	return bodyTooLarge(fmt.Sprintf("response body exceeds %d bytes", maxBodyBytes))
}

// withoutUserinfo takes the user name and password out of the URL that the
// errors of net/url and net/http quote: they hide the password only.
func withoutUserinfo(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		u.User = nil
		return u.String()
	}
	if scheme, rest, ok := strings.Cut(raw, "//"); ok {
		return scheme + "//" + rest[strings.LastIndex(rest, "@")+1:]
	}
	return raw
}

// retryableStatus: throttled (429), or a server error that a later
// attempt may not meet (500, 502, 503, 504).
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500 && code <= 504 && code != http.StatusNotImplemented
}
