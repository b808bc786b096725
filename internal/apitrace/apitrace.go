// Package apitrace records the API calls made for one scrape, in order, so
// that a person can see why the scrape went as it did: every HTTP attempt
// with its endpoint, status, duration, request ID and the waits before it
// (rate limit, free connection slot, retry backoff), and notes such as a
// call refused, or a result taken from a cache.
//
// A Trace travels in the context (With): every call made with that context
// records into it. It keeps what an error message keeps and never a request
// header or body, so it holds no secret, signature or token.
package apitrace

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Trace is the record of one scrape's calls.
type Trace struct {
	mu      sync.Mutex
	start   time.Time
	events  []Event
	dropped int
}

// maxEvents bounds a trace; a scrape of a huge account pages a few hundred
// times at most.
const maxEvents = 2000

// Event is one HTTP attempt.
type Event struct {
	Endpoint, Method string
	URL              string // kept without query or user info
	Attempt          int    // 1 for the first try
	Status           int    // 0: no answer
	Took             time.Duration
	RequestID        string
	RateWait         time.Duration // waiting for the credential's rate limit
	SlotWait         time.Duration // waiting for a free in-flight slot
	Backoff          time.Duration // waiting before this retry
	Err              string

	at   time.Duration // since the trace began
	note string
}

// New starts an empty trace; times in it count from now.
func New() *Trace { return &Trace{start: time.Now()} }

type key struct{}

// With returns ctx carrying t: the calls made with it record into t.
func With(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, key{}, t)
}

// From is the Trace ctx carries; nil, which records nothing, for none.
func From(ctx context.Context) *Trace {
	t, _ := ctx.Value(key{}).(*Trace)
	return t
}

// Add records e.
func (t *Trace) Add(e Event) {
	if t == nil {
		return
	}
	if u, err := url.Parse(e.URL); err == nil {
		e.URL = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
	} else {
		e.URL = ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) >= maxEvents {
		t.dropped++
		return
	}
	e.at = time.Since(t.start)
	t.events = append(t.events, e)
}

// Note adds a line that is not an API call, e.g. that a result came from a
// cache. It must not hold a secret.
func (t *Trace) Note(format string, args ...any) {
	t.Add(Event{note: fmt.Sprintf(format, args...)})
}

// Note adds a Note to the Trace ctx carries, if any.
func Note(ctx context.Context, format string, args ...any) {
	if t := From(ctx); t != nil {
		t.Note(format, args...)
	}
}

// Len is the number of lines recorded.
func (t *Trace) Len() int { return t.count(func(Event) bool { return true }) }

// Calls is the number of HTTP attempts recorded (notes left out).
func (t *Trace) Calls() int { return t.count(func(e Event) bool { return e.Attempt > 0 }) }

func (t *Trace) count(match func(Event) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.events {
		if match(e) {
			n++
		}
	}
	return n
}

// WriteTo writes one logfmt line per recorded event, in order.
func (t *Trace) WriteTo(w io.Writer) (int64, error) {
	t.mu.Lock()
	events := append([]Event(nil), t.events...)
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

func (e *Event) format(b *strings.Builder) {
	sep := ""
	kv := func(k, v string) {
		if v == "" || strings.ContainsAny(v, " =\"\\") || strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
			v = strconv.Quote(v)
		}
		b.WriteString(sep + k + "=" + v)
		sep = " "
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
	kv("endpoint", e.Endpoint)
	kv("attempt", strconv.Itoa(e.Attempt))
	kv("method", e.Method)
	kv("url", e.URL)
	if e.Status != 0 {
		kv("status", strconv.Itoa(e.Status))
	} else {
		kv("status", "none")
	}
	dur("duration", e.Took, true)
	if e.RequestID != "" {
		kv("request_id", e.RequestID)
	}
	dur("rate_limit_wait", e.RateWait, true)
	dur("slot_wait", e.SlotWait, false)
	dur("backoff", e.Backoff, false)
	if e.Err != "" {
		kv("err", e.Err)
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
