package multicast

// #include "multicast.h"
import "C"

import (
	"errors"
	"net"
)

// Status is libmulticast's mc_status.
type Status int

// The statuses, with the values of the C enum.
const (
	StatusOK              Status = C.MC_OK
	StatusTimeout         Status = C.MC_TIMEOUT
	StatusInvalidArgument Status = C.MC_ERR_INVALID_ARGUMENT
	StatusNotMulticast    Status = C.MC_ERR_NOT_MULTICAST
	StatusInterface       Status = C.MC_ERR_INTERFACE
	StatusMessageTooLarge Status = C.MC_ERR_MESSAGE_TOO_LARGE
	StatusBufferTooSmall  Status = C.MC_ERR_BUFFER_TOO_SMALL
	StatusInvalidJSON     Status = C.MC_ERR_INVALID_JSON
	StatusClosed          Status = C.MC_ERR_CLOSED
	StatusIO              Status = C.MC_ERR_IO
	StatusInternal        Status = C.MC_ERR_INTERNAL
	StatusRateLimited     Status = C.MC_ERR_RATE_LIMITED
)

// One sentinel per error status, for errors.Is.
var (
	ErrInvalidArgument = errors.New("invalid argument")
	ErrNotMulticast    = errors.New("not a multicast address")
	ErrInterface       = errors.New("interface error")
	ErrMessageTooLarge = errors.New("message too large")
	ErrBufferTooSmall  = errors.New("buffer too small")
	ErrInvalidJSON     = errors.New("invalid JSON")
	ErrClosed          = errors.New("group is closed")
	ErrIO              = errors.New("I/O error")
	ErrInternal        = errors.New("internal error")
	ErrRateLimited     = errors.New("send rate limited")
)

var sentinels = map[Status]error{
	StatusInvalidArgument: ErrInvalidArgument,
	StatusNotMulticast:    ErrNotMulticast,
	StatusInterface:       ErrInterface,
	StatusMessageTooLarge: ErrMessageTooLarge,
	StatusBufferTooSmall:  ErrBufferTooSmall,
	StatusInvalidJSON:     ErrInvalidJSON,
	StatusClosed:          ErrClosed,
	StatusIO:              ErrIO,
	StatusInternal:        ErrInternal,
	StatusRateLimited:     ErrRateLimited,
}

// Error is a failed call: its status and libmulticast's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the status's sentinel, so errors.Is(err, ErrClosed) works.
func (e *Error) Unwrap() error { return sentinels[e.Status] }

// Is makes a closed group's error match net.ErrClosed too, as a closed net.Conn's does,
// so code written for the standard library's connections recognises it.
func (e *Error) Is(target error) bool { return target == net.ErrClosed && e.Status == StatusClosed }

// String names the status, e.g. "MC_ERR_CLOSED".
func (s Status) String() string { return C.GoString(C.mc_status_str(C.mc_status(s))) }
