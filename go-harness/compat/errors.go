package compat

import (
	"fmt"
	"os"
)

// invalidError is an input the bridges refuse before asking the kernel.
// errors.Is(err, os.ErrInvalid) holds, but the text does not end in
// "invalid argument", which would read like a kernel EINVAL.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == os.ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}
