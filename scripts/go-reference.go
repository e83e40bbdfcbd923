// go-reference: the reference parser container runtimes read image references with,
// docker/distribution's reference.ParseNormalizedNamed (Debian's
// golang-github-docker-distribution-dev, 2.8.2; the same grammar and normalisation as
// github.com/distribution/reference, which it became, up to the differences
// tests/reference_against_go.rs names), as the kubelet and containerd's CRI call it: parsed,
// then reference.TagNameOnly (`:latest` when neither tag nor digest is written). The reference
// of tests/reference_against_go.rs, which compares cluster_image_policy's ImageReference::parse
// with it.
//
// Reads JSON lines {"reference": string} from the file named by its argument and writes, for
// each, one JSON line: {"domain", "path", "tag", "digest", "string", "familiar"} (Domain(),
// Path(), the tag and digest ("" when absent), String() and reference.FamiliarString() of the
// TagNameOnly reference), or {"error": string} when ParseNormalizedNamed refuses it.
//
// go-digest's sha384 and sha512 are available as they are in containerd (crypto/sha512
// linked); sha256 always.
//
// Built by `make test-tools` with Debian's golang-go and golang-github-docker-distribution-dev
// (GOPATH /usr/share/gocode, no module download) into target/test-tools/bin.
package main

import (
	"bufio"
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"os"

	"github.com/docker/distribution/reference"
)

type request struct {
	Reference *string `json:"reference"`
}

func answer(text string) map[string]string {
	named, err := reference.ParseNormalizedNamed(text)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	named = reference.TagNameOnly(named)
	reply := map[string]string{
		"domain":   reference.Domain(named),
		"path":     reference.Path(named),
		"tag":      "",
		"digest":   "",
		"string":   named.String(),
		"familiar": reference.FamiliarString(named),
	}
	if tagged, ok := named.(reference.Tagged); ok {
		reply["tag"] = tagged.Tag()
	}
	if digested, ok := named.(reference.Digested); ok {
		reply["digest"] = digested.Digest().String()
	}
	return reply
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go-reference CASES.jsonl")
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
		if err := json.Unmarshal(lines.Bytes(), &case_); err != nil || case_.Reference == nil {
			fmt.Fprintf(os.Stderr, "bad case %q: %v\n", lines.Text(), err)
			os.Exit(1)
		}
		if err := encoder.Encode(answer(*case_.Reference)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
