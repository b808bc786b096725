// Package flight runs one call per key for concurrent callers.
//
// It is not golang.org/x/sync/singleflight because of one difference that
// matters to an exporter: singleflight runs the call on the first caller's
// context, so when that caller has a short deadline (a scrape with a small
// timeout) every caller that joined it fails too. Here the call runs on a
// context of its own, which keeps the first caller's values but not its
// deadline, and which is cancelled only when every caller waiting for it has
// given up: a caller with a short deadline fails alone, and no work outlives
// all of its callers.
package flight

import (
	"context"
	"sync"
)

// Group runs calls keyed by K. The zero Group is ready to use.
type Group[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Do returns the result of fn for key: that of the call in flight for key if
// there is one, else that of a new call. A caller whose ctx ends first gets
// ctx.Err() at once. When the last caller waiting for a call leaves, the call
// is cancelled and forgotten: a later Do starts afresh rather than join it.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	c := g.calls[key]
	if c == nil {
		if g.calls == nil {
			g.calls = map[K]*call[V]{}
		}
		// WithoutCancel keeps the values (e.g. for tracing) but not the
		// deadline of the caller that happened to arrive first.
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(cctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
			g.forget(key, c)
		}
		g.mu.Unlock()
		var zero V
		return zero, ctx.Err()
	}
}

func (g *Group[K, V]) run(ctx context.Context, key K, c *call[V], fn func(context.Context) (V, error)) {
	v, err := fn(ctx)
	c.cancel()
	g.mu.Lock()
	c.val, c.err = v, err
	g.forget(key, c)
	g.mu.Unlock()
	close(c.done)
}

// forget removes c unless a newer call for key has replaced it.
func (g *Group[K, V]) forget(key K, c *call[V]) {
	if g.calls[key] == c {
		delete(g.calls, key)
	}
}
