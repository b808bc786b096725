package collector

import (
	"context"
	"time"
)

// The exporter's fetches go through shared(): concurrent scrapes of one
// target and collector wait on a single in-flight fetch, and a successful
// result younger than its TTL is reused. It is the singleflight idea with one
// difference that matters here: the fetch runs on its own context, cancelled
// only when every scrape waiting for it has given up, so one scrape with a
// short deadline does not fail the others, and no work outlives all of them.

type cached struct {
	at  time.Time // when the fetch that produced val started
	val any
}

type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
}

// shared returns the result for key: from the cache when younger than ttl,
// else from the fetch in flight for key, else from a new fetch. Failures are
// never cached.
func (e *Exporter) shared(ctx context.Context, key string, ttl time.Duration, fetch func(context.Context) (any, error)) (any, error) {
	e.mu.Lock()
	if c, ok := e.cache[key]; ok {
		if e.now().Sub(c.at) < ttl {
			e.mu.Unlock()
			return c.val, nil
		}
		delete(e.cache, key)
	}
	f := e.flights[key]
	if f == nil {
		// WithoutCancel keeps the values (e.g. for tracing) but not the
		// deadline of the scrape that happened to arrive first.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		e.flights[key] = f
		start := e.now()
		go func() {
			val, err := fetch(fctx)
			cancel()
			e.mu.Lock()
			f.val, f.err = val, err
			if err == nil && ttl > 0 {
				e.cache[key] = cached{at: start, val: val}
			}
			if e.flights[key] == f {
				delete(e.flights, key)
			}
			e.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	e.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		e.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants the answer any more: stop the work, and let the
			// next scrape start afresh rather than join a cancelled fetch.
			f.cancel()
			if e.flights[key] == f {
				delete(e.flights, key)
			}
		}
		e.mu.Unlock()
		return nil, ctx.Err()
	}
}
