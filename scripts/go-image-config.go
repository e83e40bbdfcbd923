// go-image-config: Go's encoding/json reading an image config as go-containerregistry's
// v1.ParseConfigFile reads it (json.NewDecoder(r).Decode(&cf) into a v1.ConfigFile) and writing
// it back with json.Marshal: the view of `config` a policy-controller ClusterImagePolicy with
// `fetchConfigFile: true` evaluates. The reference of testkit's go_image_configs (the tests of
// cluster_image_policy::policy::image_config::go_view).
//
// Reads JSON lines {"config": string}, each the text of an image config, from the file named by
// its argument (stdin without one) and writes, for each, one JSON line: {"view": <json.Marshal
// of the decoded ConfigFile>}, or {"error": string} when decoding (or encoding) fails.
//
// The types below are written from go-containerregistry's documented format (pkg/v1/config.go
// and pkg/v1/hash.go at 5fc31d5f0d60adf003b0353ee43c1b242cd4b887): the same Go field types and
// the same json tags. Debian's Go 1.19 builds this; policy-controller is built with Go >= 1.22,
// whose time.Time JSON methods differ: Time carries them as Go >= 1.20 has them (see there).
//
// Built by `make test-tools` with Debian's golang-go (standard library only) into
// target/test-tools/bin.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ConfigFile as go-containerregistry's v1.ConfigFile.
type ConfigFile struct {
	Architecture  string    `json:"architecture"`
	Author        string    `json:"author,omitempty"`
	Container     string    `json:"container,omitempty"`
	Created       Time      `json:"created,omitempty"`
	DockerVersion string    `json:"docker_version,omitempty"`
	History       []History `json:"history,omitempty"`
	OS            string    `json:"os"`
	RootFS        RootFS    `json:"rootfs"`
	Config        Config    `json:"config"`
	OSVersion     string    `json:"os.version,omitempty"`
	Variant       string    `json:"variant,omitempty"`
	OSFeatures    []string  `json:"os.features,omitempty"`
}

// History as v1.History.
type History struct {
	Author     string `json:"author,omitempty"`
	Created    Time   `json:"created,omitempty"`
	CreatedBy  string `json:"created_by,omitempty"`
	Comment    string `json:"comment,omitempty"`
	EmptyLayer bool   `json:"empty_layer,omitempty"`
}

// RootFS as v1.RootFS.
type RootFS struct {
	Type    string `json:"type"`
	DiffIDs []Hash `json:"diff_ids"`
}

// HealthConfig as v1.HealthConfig.
type HealthConfig struct {
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// Config as v1.Config.
type Config struct {
	AttachStderr    bool                `json:"AttachStderr,omitempty"`
	AttachStdin     bool                `json:"AttachStdin,omitempty"`
	AttachStdout    bool                `json:"AttachStdout,omitempty"`
	Cmd             []string            `json:"Cmd,omitempty"`
	Healthcheck     *HealthConfig       `json:"Healthcheck,omitempty"`
	Domainname      string              `json:"Domainname,omitempty"`
	Entrypoint      []string            `json:"Entrypoint,omitempty"`
	Env             []string            `json:"Env,omitempty"`
	Hostname        string              `json:"Hostname,omitempty"`
	Image           string              `json:"Image,omitempty"`
	Labels          map[string]string   `json:"Labels,omitempty"`
	OnBuild         []string            `json:"OnBuild,omitempty"`
	OpenStdin       bool                `json:"OpenStdin,omitempty"`
	StdinOnce       bool                `json:"StdinOnce,omitempty"`
	Tty             bool                `json:"Tty,omitempty"`
	User            string              `json:"User,omitempty"`
	Volumes         map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir      string              `json:"WorkingDir,omitempty"`
	ExposedPorts    map[string]struct{} `json:"ExposedPorts,omitempty"`
	ArgsEscaped     bool                `json:"ArgsEscaped,omitempty"`
	NetworkDisabled bool                `json:"NetworkDisabled,omitempty"`
	MacAddress      string              `json:"MacAddress,omitempty"`
	StopSignal      string              `json:"StopSignal,omitempty"`
	Shell           []string            `json:"Shell,omitempty"`
}

// Time as v1.Time (time.Time embedded, so its methods are promoted), but with time.Time's JSON
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

// Hash as v1.Hash: `algorithm:hex` in a JSON string.
type Hash struct {
	Algorithm string
	Hex       string
}

// MarshalJSON writes the hash as the JSON string `algorithm:hex`.
func (h Hash) MarshalJSON() ([]byte, error) {
	return json.Marshal(h.Algorithm + ":" + h.Hex)
}

// UnmarshalJSON reads what go-containerregistry's reads: the raw JSON value unquoted by Go's
// strconv.Unquote (so `null`, a number or an object fail to unquote: the decoder hands `null` to
// an element's UnmarshalJSON too, as Hash is not a pointer), split at `:` into exactly two parts,
// the second only of `0-9a-f`, the first a known algorithm (only sha256), with exactly 64 hex
// digits.
func (h *Hash) UnmarshalJSON(data []byte) error {
	text, err := strconv.Unquote(string(data))
	if err != nil {
		return err
	}
	parts := strings.Split(text, ":")
	if len(parts) != 2 {
		return fmt.Errorf("too many parts in hash: %s", text)
	}
	if rest := strings.TrimLeft(parts[1], "0123456789abcdef"); rest != "" {
		return fmt.Errorf("found non-hex character in hash: %c", rest[0])
	}
	if parts[0] != "sha256" {
		return fmt.Errorf("unsupported hash: %q", parts[0])
	}
	if len(parts[1]) != 64 {
		return fmt.Errorf("wrong number of hex digits for %s: %s", parts[0], parts[1])
	}
	h.Algorithm, h.Hex = parts[0], parts[1]
	return nil
}

type request struct {
	Config *string `json:"config"`
}

type reply struct {
	View  json.RawMessage `json:"view,omitempty"`
	Error *string         `json:"error,omitempty"`
}

// view is what policy-controller hands a policy for the config `text`: v1.ParseConfigFile's
// decoding, encoded again by json.Marshal.
func view(text string) (json.RawMessage, error) {
	var cf ConfigFile
	if err := json.NewDecoder(strings.NewReader(text)).Decode(&cf); err != nil {
		return nil, err
	}
	written, err := json.Marshal(&cf)
	if err != nil {
		return nil, fmt.Errorf("json.Marshal: %w", err)
	}
	return written, nil
}

func main() {
	var input io.Reader = os.Stdin
	switch len(os.Args) {
	case 1:
	case 2:
		file, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer file.Close()
		input = file
	default:
		fmt.Fprintln(os.Stderr, "usage: go-image-config [CASES.jsonl]")
		os.Exit(2)
	}
	lines := bufio.NewScanner(input)
	lines.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	encoder := json.NewEncoder(out)
	for lines.Scan() {
		var case_ request
		if err := json.Unmarshal(lines.Bytes(), &case_); err != nil || case_.Config == nil {
			fmt.Fprintf(os.Stderr, "bad case %q: %v\n", lines.Text(), err)
			out.Flush()
			os.Exit(1)
		}
		var answer reply
		if written, err := view(*case_.Config); err != nil {
			message := err.Error()
			answer.Error = &message
		} else {
			answer.View = written
		}
		if err := encoder.Encode(answer); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
