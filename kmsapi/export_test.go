package kmsapi

// SetMaxBodyBytes lowers the response body cap for the tests of package
// kmsapi_test and returns a function restoring it.
func SetMaxBodyBytes(n int64) (restore func()) {
	old := maxBodyBytes
	maxBodyBytes = n
	return func() { maxBodyBytes = old }
}
