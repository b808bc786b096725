package kmsapi

import "io"

// DecodeKeyPage lets the benchmarks of package kmsapi_test decode pages
// served by kmsfake (which imports kmsapi).
func DecodeKeyPage(r io.Reader, size int64) ([]Key, error) {
	p, err := decodeKeyPage(r, size, nil)
	return p.Keys, err
}
