// The Go judge for Scripts/fuzz.sh: reads JSON documents the way Go's encoding/json does (what
// containerd, CRI-O and libcni use to read CNI configs) and answers with a canonical rendering of
// the value, so the fuzz target (Fuzz/GoJudge.swift) can check that podwire's reader accepts the
// same documents and reads the same values.
//
// Co-process mode (no arguments): each request on stdin is a 4-byte little-endian length and that
// many bytes; each answer on stdout is a 4-byte little-endian length and that many bytes: "A" and
// the rendering when json.Unmarshal into an interface{} accepts the document, "E" and the error
// when it does not. With file arguments it prints the answer for each file instead.
//
// The rendering: null "n", true "t", false "f", a number "d" and the 16 hex digits of its IEEE-754
// bits, a string "s", its length in bytes, ":" and its bytes, an array "[" items "]", an object "{"
// key (as a string) and value for each key in byte order "}".
//
// Standard library only; built in GOPATH mode (GO111MODULE=off) by Scripts/fuzz.sh.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
)

func render(out []byte, value interface{}) []byte {
	switch v := value.(type) {
	case nil:
		return append(out, 'n')
	case bool:
		if v {
			return append(out, 't')
		}
		return append(out, 'f')
	case float64:
		return append(out, fmt.Sprintf("d%016x", math.Float64bits(v))...)
	case string:
		out = append(out, 's')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		out = append(out, ':')
		return append(out, v...)
	case []interface{}:
		out = append(out, '[')
		for _, item := range v {
			out = render(out, item)
		}
		return append(out, ']')
	case map[string]interface{}:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys) // Go compares strings byte by byte
		out = append(out, '{')
		for _, key := range keys {
			out = render(out, key)
			out = render(out, v[key])
		}
		return append(out, '}')
	default:
		panic(fmt.Sprintf("unexpected type %T from encoding/json", value))
	}
}

func judge(document []byte) []byte {
	var value interface{}
	if err := json.Unmarshal(document, &value); err != nil {
		message := err.Error()
		if syntax, ok := err.(*json.SyntaxError); ok {
			message = fmt.Sprintf("%s (offset %d)", message, syntax.Offset)
		}
		return append([]byte{'E'}, message...)
	}
	return render([]byte{'A'}, value)
}

func main() {
	if len(os.Args) > 1 {
		for _, name := range os.Args[1:] {
			document, err := os.ReadFile(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Printf("%s: %q\n", name, judge(document))
		}
		return
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	var header [4]byte
	for {
		if _, err := io.ReadFull(in, header[:]); err != nil {
			if err == io.EOF {
				return // the fuzz target is done
			}
			fmt.Fprintln(os.Stderr, "gojudge: reading a request:", err)
			os.Exit(2)
		}
		document := make([]byte, binary.LittleEndian.Uint32(header[:]))
		if _, err := io.ReadFull(in, document); err != nil {
			fmt.Fprintln(os.Stderr, "gojudge: reading a request:", err)
			os.Exit(2)
		}
		answer := judge(document)
		binary.LittleEndian.PutUint32(header[:], uint32(len(answer)))
		if _, err := out.Write(header[:]); err != nil {
			os.Exit(2)
		}
		if _, err := out.Write(answer); err != nil {
			os.Exit(2)
		}
		if err := out.Flush(); err != nil {
			os.Exit(2)
		}
	}
}
