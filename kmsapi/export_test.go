package kmsapi

import (
	"context"
	"errors"

	"github.com/kms-exporter/kms_exporter/internal/lockout"
)

// SetMaxBodyBytes lowers the response body cap for the tests of package
// kmsapi_test and returns a function restoring it.
func SetMaxBodyBytes(n int64) (restore func()) {
	old := maxBodyBytes
	maxBodyBytes = n
	return func() { maxBodyBytes = old }
}

// The error checks of the tests, for package kmsapi_test.
var (
	StatusIs      = statusIs
	IsServerError = isServerError
	IsAuthFailure = isAuthFailure
	IsPaused      = func(err error) bool { return errors.Is(err, lockout.ErrPaused) }
)

// ListKeys returns every key once, in the API's order: VisitKeys with the
// pages joined, for tests that look at a whole listing.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	keys := []Key{}
	err := c.VisitKeys(ctx, func(page []Key) error {
		keys = append(keys, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// Credential is the credential c calls with.
func (c *Client) Credential() *Credential { return c.opts.Credential }
