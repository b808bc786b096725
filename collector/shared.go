package collector

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
	"github.com/kms-exporter/kms_exporter/internal/flight"
)

// results holds what the collectors fetched, per target and collector:
// concurrent scrapes wait on a single fetch in flight, and a successful
// result younger than the collector's reuse time is served again. Failures
// are never served from the cache: the next scrape fetches again. So a
// collector served from the cache reports success, the outcome of the fetch
// that filled it.
type results struct {
	now     func() time.Time
	flights flight.Group[resultKey, fetched]

	mu     sync.Mutex
	cache  map[resultKey]cached
	lastOK map[string]bool // by target: whether its last fetch to end succeeded
}

type resultKey struct{ target, collector string }

type cached struct {
	at   time.Time // when the fetch that produced emit started
	emit emitFunc
}

// fetched is what a fetch in flight gives every scrape waiting for it.
type fetched struct {
	emit   emitFunc
	cached bool // found in the cache after all: no call made
}

func newResults(now func() time.Time) *results {
	return &results{now: now, cache: map[resultKey]cached{}, lastOK: map[string]bool{}}
}

// get returns c's result for the target: from the cache when young enough,
// else from the fetch in flight, else from a new fetch. called says whether
// the result comes from an API call made for this scrape. The scrape's
// trace says when no call was made for it.
func (r *results) get(ctx context.Context, target string, c collector, fetch func(context.Context) (emitFunc, error)) (emit emitFunc, called bool, err error) {
	key := resultKey{target, c.name()}
	ttl := c.reuse()
	if emit := r.cachedFor(ctx, key, ttl); emit != nil {
		return emit, false, nil
	}
	var led atomic.Bool
	f, err := r.flights.Do(ctx, key, func(ctx context.Context) (fetched, error) {
		led.Store(true)
		// A fetch that ended between the check above and Do has filled
		// the cache: no second call for it.
		if emit := r.cachedFor(ctx, key, ttl); emit != nil {
			return fetched{emit: emit, cached: true}, nil
		}
		start := r.now()
		emit, err := fetch(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lastOK[target] = err == nil
		if err == nil && ttl > 0 {
			r.cache[key] = cached{at: start, emit: emit}
		}
		return fetched{emit: emit}, err
	})
	if !led.Load() {
		apitrace.Note(ctx, "%s: shared the fetch another scrape had in flight; its calls are in that scrape's log", c.name())
	}
	return f.emit, !f.cached, err
}

// lastCallOK reports whether the target's last fetch to end succeeded.
func (r *results) lastCallOK(target string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastOK[target]
}

// cachedFor is fresh, noted in the trace of ctx when found.
func (r *results) cachedFor(ctx context.Context, key resultKey, ttl time.Duration) emitFunc {
	emit, age := r.fresh(key, ttl)
	if emit != nil {
		apitrace.Note(ctx, "%s: from the cache, fetched %s ago", key.collector, model.Duration(age.Round(time.Second)))
	}
	return emit
}

// fresh returns the cached result for key and its age when younger than ttl.
func (r *results) fresh(key resultKey, ttl time.Duration) (emitFunc, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[key]
	if !ok {
		return nil, 0
	}
	if age := r.now().Sub(c.at); age < ttl {
		return c.emit, age
	}
	delete(r.cache, key)
	return nil, 0
}
