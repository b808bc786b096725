package kmsfake

import (
	"errors"
	"net/http"
	"net/http/httptest"
)

// InMemoryClient returns an HTTP client that hands every request straight
// to the fake's handler, in the caller's goroutine and without a network.
// Inside a testing/synctest bubble the fake then runs on the bubble's clock
// (set no other with SetClock), and Latency faults cost no real time. The
// host of the request URL is ignored: use URL() or any other.
func (s *Server) InMemoryClient() *http.Client {
	return &http.Client{Transport: inMemory{s}}
}

type inMemory struct{ s *Server }

func (t inMemory) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	in := req.Clone(req.Context())
	in.Host = req.URL.Host
	in.RequestURI = req.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	defer in.Body.Close() // a RoundTripper closes the request body
	defer func() {
		// A Hang fault or Close drops the connection: the client sees an error.
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				panic(r)
			}
			resp, err = nil, errors.New("kmsfake: connection dropped without an answer")
		}
	}()
	rec := httptest.NewRecorder()
	t.s.ServeHTTP(rec, in)
	resp = rec.Result()
	resp.Request = req
	return resp, nil
}
