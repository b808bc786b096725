package kmsapi

import "io"

// DecodeKeyPage and DecodeKeyPageFrom let the benchmarks of package
// kmsapi_test decode pages served by kmsfake (which imports kmsapi).
func DecodeKeyPage(body []byte) (KeyPage, error) { return decodeKeyPage(body, true) }

func DecodeKeyPageFrom(r io.Reader, size int64) (KeyPage, error) {
	return decodeKeyPageFrom(r, size, true, nil)
}
