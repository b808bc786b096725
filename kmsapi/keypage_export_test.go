package kmsapi

import "io"

// DecodeKeyPage lets the benchmarks of package kmsapi_test decode pages
// served by kmsfake (which imports kmsapi).
func DecodeKeyPage(r io.Reader, size int64) (KeyPage, error) { return decodeKeyPage(r, size, nil) }
