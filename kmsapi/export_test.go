package kmsapi

import "errors"

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
	IsPaused      = func(err error) bool { return errors.Is(err, errCredentialPaused) }
)
