// go-time: Go's own time package as OPA's time builtins call it (v1/topdown/time.go), the
// reference of host/tests/rego_go_time.rs and of the go-time crate.
//
// Reads JSON lines {"layout": string, "text": string} or {"duration": string} from the file
// named by its argument and writes, for each, one JSON line:
//   - layout/text: OPA's time.parse_ns (layout names RFC3339 and RFC3339Nano are Go's
//     constants; time.parse_rfc3339_ns is layout "RFC3339"): {"nanos": "<UnixNano>"}, or
//     {"error": string} when time.Parse refuses the text or the time is outside what an int64
//     of nanoseconds holds (OPA's toSafeUnixNano);
//   - duration: OPA's time.parse_duration_ns: {"nanos": "<int64>"} or {"error": string}.
//
// Built by `make test-tools` with Debian's golang-go (standard library only) into
// target/test-tools/bin.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

type request struct {
	Layout   *string `json:"layout"`
	Text     string  `json:"text"`
	Duration *string `json:"duration"`
}

var layouts = map[string]string{"RFC3339": time.RFC3339, "RFC3339Nano": time.RFC3339Nano}

var (
	earliest = time.Unix(0, math.MinInt64)
	latest   = time.Unix(0, math.MaxInt64)
)

func answer(case_ request) (int64, error) {
	if case_.Duration != nil {
		d, err := time.ParseDuration(*case_.Duration)
		return int64(d), err
	}
	if case_.Layout == nil {
		return 0, errors.New("neither layout nor duration")
	}
	layout := *case_.Layout
	if constant, ok := layouts[layout]; ok {
		layout = constant
	}
	t, err := time.Parse(layout, case_.Text)
	if err != nil {
		return 0, err
	}
	if t.Before(earliest) || t.After(latest) {
		return 0, errors.New("time outside of valid range")
	}
	return t.UnixNano(), nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-time CASES.jsonl")
		os.Exit(2)
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer file.Close()
	lines := bufio.NewScanner(file)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encoder := json.NewEncoder(out)
	for lines.Scan() {
		var case_ request
		if err := json.Unmarshal(lines.Bytes(), &case_); err != nil {
			fmt.Fprintf(os.Stderr, "bad case %q: %v\n", lines.Text(), err)
			os.Exit(1)
		}
		var reply map[string]string
		if nanos, err := answer(case_); err != nil {
			reply = map[string]string{"error": err.Error()}
		} else {
			reply = map[string]string{"nanos": strconv.FormatInt(nanos, 10)}
		}
		if err := encoder.Encode(reply); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
