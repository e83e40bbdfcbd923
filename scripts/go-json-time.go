// Shared by the Go reference tools of the tests (built with each: `go build -o … scripts/go-image-config.go
// scripts/go-json-time.go`, likewise go-statement.go): time.Time's JSON reading and writing as
// the Go that builds policy-controller has them.

package main

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Time as go-containerregistry's v1.Time and time.Time (time.Time embedded, so its methods are
// promoted), but with time.Time's JSON
// methods as Go >= 1.20 has them (src/time/time.go and src/time/format_rfc3339.go; unchanged
// since, through Go 1.25), not as Debian's Go 1.19 does:
//
//   - UnmarshalJSON: `null` does nothing; anything but a JSON string is refused
//     ("Time.UnmarshalJSON: input is not a JSON string"); the text between the quotes is read as
//     written, JSON escapes not undone (Go's TODO for go.dev/issue/47353), by parseStrictRFC3339.
//     That tries the fast parseRFC3339 and, when it fails, falls back to time.Parse(RFC3339) and
//     returns its result: the extra checks after the fallback (two-digit hour, '.' before the
//     fraction, zone hour < 24 and minute < 60) are dead code in every release since Go 1.20
//     ("TODO(https://go.dev/issue/54580): Strict parsing is disabled for now", `case true:
//     return t, nil` before them), so they are not mirrored here: a one-digit hour and a ','
//     before the fraction are read. What is mirrored is how Go >= 1.20's time.Parse reads the
//     zone offset `±hh:mm` (src/time/format.go): both parts exactly two digits (getnum(_, true);
//     Go 1.19's atoi also took "+1" or "-1"), the hour at most 24 and the minute at most 60
//     ("The range test use > rather than >="; Go 1.19 took any). The fast path accepts only
//     what time.Parse also accepts, with the same result, so it needs no mirror.
//   - MarshalJSON: Go >= 1.20's appendStrictRFC3339 refuses, besides a year outside [0,9999]
//     (as Go 1.19 does), a zone offset whose hour is 24 or more ("Time.MarshalJSON: timezone hour
//     outside of range [0,23]"), which the parse above lets through (+24:00, +23:60). The text
//     written is Go 1.19's, the same: RFC3339Nano, `Z` for a zero offset.
type Time struct {
	time.Time
}

// UnmarshalJSON as Go >= 1.20's time.Time.UnmarshalJSON (see Time).
func (t *Time) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return errors.New("Time.UnmarshalJSON: input is not a JSON string")
	}
	text := string(data[1 : len(data)-1])
	parsed, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return err
	}
	// time.Parse(RFC3339) took the whole text, so it ends with the zone: `Z`, or `±hh:mm`.
	if !strings.HasSuffix(text, "Z") {
		zone := text[len(text)-len("-07:00"):]
		hour, minute := zone[1:3], zone[4:6]
		if !twoDigits(hour) || !twoDigits(minute) {
			return &time.ParseError{Layout: time.RFC3339, Value: text, LayoutElem: "Z07:00", ValueElem: zone}
		}
		if n, _ := strconv.Atoi(hour); n > 24 {
			return &time.ParseError{Layout: time.RFC3339, Value: text, LayoutElem: "Z07:00", ValueElem: zone,
				Message: ": time zone offset hour out of range"}
		}
		if n, _ := strconv.Atoi(minute); n > 60 {
			return &time.ParseError{Layout: time.RFC3339, Value: text, LayoutElem: "Z07:00", ValueElem: zone,
				Message: ": time zone offset minute out of range"}
		}
	}
	t.Time = parsed
	return nil
}

// MarshalJSON as Go >= 1.20's time.Time.MarshalJSON (see Time).
func (t Time) MarshalJSON() ([]byte, error) {
	written, err := t.Time.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if _, offset := t.Zone(); offset/3600 >= 24 || offset/3600 <= -24 {
		return nil, errors.New("Time.MarshalJSON: timezone hour outside of range [0,23]")
	}
	return written, nil
}

func twoDigits(s string) bool {
	return len(s) == 2 && '0' <= s[0] && s[0] <= '9' && '0' <= s[1] && s[1] <= '9'
}
