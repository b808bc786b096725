package collector

import (
	"context"
	"sync"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/flight"
)

// results holds what the collectors fetched, per target and collector:
// concurrent scrapes wait on a single fetch in flight, and a successful
// result younger than the collector's reuse time is served again. Failures
// are never served from the cache.
type results struct {
	now     func() time.Time
	flights flight.Group[resultKey, emitFunc]

	mu    sync.Mutex
	cache map[resultKey]cached
}

type resultKey struct{ target, collector string }

type cached struct {
	at   time.Time // when the fetch that produced emit started
	emit emitFunc
}

func newResults(now func() time.Time) *results {
	return &results{now: now, cache: map[resultKey]cached{}}
}

// get returns c's result for the target: from the cache when young enough,
// else from the fetch in flight, else from a new fetch.
func (r *results) get(ctx context.Context, target string, c collector, fetch func(context.Context) (emitFunc, error)) (emitFunc, error) {
	key := resultKey{target, c.name()}
	ttl := c.reuse()
	if emit := r.fresh(key, ttl); emit != nil {
		return emit, nil
	}
	return r.flights.Do(ctx, key, func(ctx context.Context) (emitFunc, error) {
		// A fetch that ended between the check above and Do has filled
		// the cache: no second call for it.
		if emit := r.fresh(key, ttl); emit != nil {
			return emit, nil
		}
		start := r.now()
		emit, err := fetch(ctx)
		if err == nil && ttl > 0 {
			r.mu.Lock()
			r.cache[key] = cached{at: start, emit: emit}
			r.mu.Unlock()
		}
		return emit, err
	})
}

// fresh returns the cached result for key when younger than ttl.
func (r *results) fresh(key resultKey, ttl time.Duration) emitFunc {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[key]
	if !ok {
		return nil
	}
	if r.now().Sub(c.at) < ttl {
		return c.emit
	}
	delete(r.cache, key)
	return nil
}
