package kmsapi

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
)

// The package's tests that call a server run in a testing/synctest bubble
// on an in-memory network: a goroutine waiting on a connection there counts
// as blocked, so the bubble's clock moves on. Client and server are
// net/http's own, so a test sees real HTTP: Content-Length, chunking, cut
// connections.
var (
	testNet = &memnet.Network{}
	memSeq  atomic.Int64
)

// testServer is a server on the in-memory network.
type testServer struct {
	URL string
}

// serveMem serves h on a host of its own until the test ends; config, if
// set, adjusts the http.Server first.
func serveMem(t *testing.T, h http.Handler, config func(*http.Server)) *testServer {
	host := fmt.Sprintf("kms-%d.test", memSeq.Add(1))
	l, err := testNet.Listen(host + ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	if config != nil {
		config(srv)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &testServer{URL: "http://" + host}
}

// memClient is an HTTP client on the in-memory network, its idle
// connections closed when the test ends; wrap, if set, wraps its transport.
func memClient(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	tr := testNet.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	if wrap != nil {
		return &http.Client{Transport: wrap(tr)}
	}
	return &http.Client{Transport: tr}
}
