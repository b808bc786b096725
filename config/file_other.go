//go:build !unix

package config

// openNonBlocking: where there is no O_NONBLOCK, the checks before and
// after the open remain.
const openNonBlocking = 0
