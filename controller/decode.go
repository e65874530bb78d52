package controller

import (
	"bytes"
	"fmt"
	"io"
)

// readFrom decodes b into v with netrack's decoder, turning a decoder panic on hostile input
// into an error so that a malformed message only drops its session.
func readFrom(v io.ReaderFrom, b []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	_, err = v.ReadFrom(bytes.NewReader(b))
	return err
}
