//go:build !unix

package kmsapi

var mkfifo func(path string) error
