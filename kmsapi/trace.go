package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Trace records the API calls made for one scrape, in order, so that a
// person can see why the scrape went as it did: every HTTP attempt with its
// endpoint, status, duration, request ID and the waits before it (rate
// limit, free connection slot, retry backoff), and the calls refused
// because the credential rests after an authentication failure.
//
// A Trace travels in the context (WithTrace): every call made with that
// context records into it. It keeps what an Error keeps and never a request
// header or body, so it holds no secret, signature or token.
type Trace struct {
	mu      sync.Mutex
	start   time.Time
	events  []traceEvent
	dropped int
}

// maxTraceEvents bounds a trace; a scrape of a huge account pages a few
// hundred times at most.
const maxTraceEvents = 2000

type traceEvent struct {
	at       time.Duration // since the trace began
	endpoint string
	method   string
	url      string // scheme, host and path only
	attempt  int    // 1 for the first try; 0 for a note
	status   int    // 0: no answer
	took     time.Duration
	reqID    string
	rateWait time.Duration // waiting for the credential's rate limit
	slotWait time.Duration // waiting for a free in-flight slot
	backoff  time.Duration // waiting before this retry
	err      string
	note     string
}

// NewTrace starts an empty trace; times in it count from now.
func NewTrace() *Trace { return &Trace{start: time.Now()} }

type traceKey struct{}

// WithTrace returns ctx carrying t: the calls made with it record into t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}

func (t *Trace) add(e traceEvent) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) >= maxTraceEvents {
		t.dropped++
		return
	}
	e.at = time.Since(t.start)
	t.events = append(t.events, e)
}

// Note adds a line that is not an API call, e.g. that a result came from a
// cache. It must not hold a secret.
func (t *Trace) Note(format string, args ...any) {
	t.add(traceEvent{note: fmt.Sprintf(format, args...)})
}

// TraceNote adds a Note to the Trace ctx carries, if any.
func TraceNote(ctx context.Context, format string, args ...any) {
	if t := traceFrom(ctx); t != nil {
		t.Note(format, args...)
	}
}

// Len is the number of lines recorded.
func (t *Trace) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.events)
}

// Calls is the number of HTTP attempts recorded (notes left out).
func (t *Trace) Calls() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.events {
		if e.attempt > 0 {
			n++
		}
	}
	return n
}

// WriteTo writes one logfmt line per recorded event, in order.
func (t *Trace) WriteTo(w io.Writer) (int64, error) {
	t.mu.Lock()
	events := append([]traceEvent(nil), t.events...)
	dropped := t.dropped
	t.mu.Unlock()
	var b strings.Builder
	for _, e := range events {
		e.format(&b)
	}
	if dropped > 0 {
		fmt.Fprintf(&b, "msg=%q\n", strconv.Itoa(dropped)+" more events not recorded")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func (e *traceEvent) format(b *strings.Builder) {
	first := true
	kv := func(k, v string) {
		if !first {
			b.WriteByte(' ')
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		if v == "" || strings.ContainsAny(v, " =\"\\") || strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	dur := func(k string, d time.Duration, always bool) {
		if v := formatDuration(d); v != "0ms" || always {
			kv(k, v)
		}
	}
	kv("at", "+"+formatDuration(e.at))
	if e.note != "" {
		kv("msg", e.note)
		b.WriteByte('\n')
		return
	}
	kv("endpoint", e.endpoint)
	kv("attempt", strconv.Itoa(e.attempt))
	kv("method", e.method)
	kv("url", e.url)
	if e.status != 0 {
		kv("status", strconv.Itoa(e.status))
	} else {
		kv("status", "none")
	}
	dur("duration", e.took, true)
	if e.reqID != "" {
		kv("request_id", e.reqID)
	}
	dur("rate_limit_wait", e.rateWait, true)
	dur("slot_wait", e.slotWait, false)
	dur("backoff", e.backoff, false)
	if e.err != "" {
		kv("err", e.err)
	}
	b.WriteByte('\n')
}

// formatDuration writes d in milliseconds to the hundredth below a second,
// else in seconds to the millisecond: ASCII, so that a line stays unquoted.
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(float64(d.Round(10*time.Microsecond))/float64(time.Millisecond), 'f', -1, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d.Round(time.Millisecond))/float64(time.Second), 'f', -1, 64) + "s"
}

// traceURL keeps the scheme, host and path of a request URL: a query or a
// user name and password given in an endpoint stay out of the trace.
func traceURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}

// callInfo is what send learns about one attempt, for the trace.
type callInfo struct {
	endpoint, method, url string
	status                int
	took                  time.Duration
	reqID                 string
	rateWait, slotWait    time.Duration
}

// traceAttempt records attempt number n (1 for the first try) of a call,
// made after waiting backoff.
func traceAttempt(ctx context.Context, a attempt, n int, backoff time.Duration) {
	t := traceFrom(ctx)
	if t == nil || a.call == nil {
		return
	}
	c := a.call
	e := traceEvent{endpoint: c.endpoint, method: c.method, url: traceURL(c.url), attempt: n, status: c.status,
		took: c.took, reqID: c.reqID, rateWait: c.rateWait, slotWait: c.slotWait, backoff: backoff}
	if a.err != nil {
		e.err = a.err.Error()
	}
	t.add(e)
}

// traceRefused records a call that did not go out because the credential
// is paused.
func traceRefused(ctx context.Context, endpoint string, err error) {
	if t := traceFrom(ctx); t != nil {
		var p *pausedError
		if errors.As(err, &p) {
			t.add(traceEvent{note: endpoint + ": not sent: credential " + p.name + " paused until " + p.until.UTC().Format(time.RFC3339) + " after " + p.last.Error()})
		}
	}
}
