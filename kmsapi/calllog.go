package kmsapi

import (
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

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

// warn logs a warning when the credential has a logger.
func (c *Credential) warn(keyvals ...any) {
	if c.opts.Logger != nil {
		level.Warn(c.opts.Logger).Log(keyvals...)
	}
}

// warnPaused writes the one warning of a pause that e started.
// c.gate.mu is held.
func (c *Credential) warnPaused(e *Error) {
	g := &c.gate
	c.warn("msg", "authentication failed: credential paused, no call with it until the pause ends",
		"credential", c.opts.Name, "endpoint", e.Endpoint, "status", e.StatusCode, "error_code", e.Code, "request_id", e.RequestID,
		"failures", g.failures, "pause", g.until.Sub(c.opts.Now()).Round(time.Second), "until", g.until.UTC().Format(time.RFC3339),
		"hint", authHint(c.opts.Auth))
}
