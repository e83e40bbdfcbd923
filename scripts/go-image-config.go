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
