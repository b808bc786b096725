package kmsapi

import (
	"errors"
	"net/http"
	"strconv"
)

// Error is a failed API call: either the service answered with an error
// status (StatusCode, Code, Message, RequestID from the body and the
// X-Request-Id header), or no usable answer came (StatusCode 0, Err set), or a
// 200 whose body could not be decoded (StatusCode 200, Err set).
//
// Error never holds request headers or credentials, so it is safe to log.
type Error struct {
	Endpoint   string // one of the Endpoint* names
	StatusCode int
	Code       string // error_code, e.g. "KMS.0303", "APIGW.0301"
	Message    string // error_msg
	RequestID  string
	Err        error
}

func (e *Error) Error() string {
	s := e.Endpoint + ": "
	if e.StatusCode != 0 && e.StatusCode != http.StatusOK {
		s += "HTTP " + strconv.Itoa(e.StatusCode)
		if e.Code != "" {
			s += " " + e.Code
		}
		if e.Message != "" {
			s += ": " + e.Message
		}
		if e.Err != nil {
			s += ": "
		}
	}
	if e.Err != nil {
		s += e.Err.Error()
	}
	if e.RequestID != "" {
		s += " (request_id=" + e.RequestID + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// errCredentialPaused is returned (wrapped, with the remembered failure)
// when a credential is resting after an authentication failure.
var errCredentialPaused = errors.New("credential paused after an authentication failure")
