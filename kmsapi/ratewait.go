package kmsapi

import (
	"context"
	"time"
)

// waitLimit waits for the credential's rate limit and adds the time spent
// to RateLimitWait, successful or not: a call given up while queued waited too.
func (c *Credential) waitLimit(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.limiter.Wait(ctx)
	d := time.Since(start)
	c.waited.Add(int64(d))
	return d, err
}

// RateLimitWait is the total time calls with this credential have spent
// waiting for its client-side rate limit: it grows about as fast as the
// clock when the credential's calls need more than its requests per second.
func (c *Credential) RateLimitWait() time.Duration { return time.Duration(c.waited.Load()) }

// RequestsPerSecond and Burst are the credential's rate limit.
func (c *Credential) RequestsPerSecond() float64 { return c.opts.RequestsPerSecond }
func (c *Credential) Burst() int                 { return c.limiter.Burst() }
