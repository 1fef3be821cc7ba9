package cloudinit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// This file holds a small ISO 9660 writer for flat images (files in the
// root directory only), which is all a NoCloud seed needs.
//
// Why not github.com/kdomanski/iso9660's writer: it writes plain ISO 9660
// names only and mangles them ("meta-data" becomes META_DATA;1, which the
// Linux kernel shows as "meta_data"), so cloud-init would not find its files.
// Like `genisoimage -J -R` (what cloud-localds runs), this writer records
// every file three ways:
//
//   - the primary tree with ISO 9660 level 1 names (META_DAT.;1), for readers
//     that know nothing else;
//   - Rock Ridge (SUSP SP/ER in the root's "." record, NM + PX on every file)
//     in that same tree, carrying the exact name — what Linux uses by default;
//   - a Joliet supplementary tree (UCS-2 names), what Windows uses and what
//     Linux uses when mounted with -o norock.
//
// Timestamps are fixed, so the same files always give the same bytes.

const sectorSize = 2048

// isoEpoch is the recording time written everywhere in the image.
var isoEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type isoFile struct {
	name string // exact name (Rock Ridge / Joliet)
	data []byte
}

// writeFlatISO writes an image labelled label holding files in its root.
func writeFlatISO(w io.Writer, label string, files []isoFile) error {
	if label == "" || len(label) > 16 {
		return fmt.Errorf("iso: label %q must be 1 to 16 characters", label)
	}
	type entry struct {
		isoFile
		primary string // level 1 identifier, with ";1"
		joliet  []byte // UCS-2BE identifier (no version, as genisoimage writes)
		extent  uint32
	}
	entries := make([]*entry, len(files))
	seenPrimary := map[string]string{}
	seenName := map[string]bool{}
	for i, f := range files {
		if f.name == "" || strings.ContainsAny(f.name, "/\x00") || len(f.name) > 64 {
			return fmt.Errorf("iso: bad file name %q", f.name)
		}
		if seenName[f.name] {
			return fmt.Errorf("iso: file %q given twice", f.name)
		}
		seenName[f.name] = true
		p := level1Name(f.name)
		if other, dup := seenPrimary[p]; dup {
			return fmt.Errorf("iso: %q and %q both map to ISO 9660 name %s", other, f.name, p)
		}
		seenPrimary[p] = f.name
		entries[i] = &entry{isoFile: f, primary: p, joliet: ucs2(f.name)}
	}

	// Records in a directory are sorted by identifier (ECMA-119 9.3).
	primary := append([]*entry(nil), entries...)
	sort.Slice(primary, func(i, j int) bool { return primary[i].primary < primary[j].primary })
	joliet := append([]*entry(nil), entries...)
	sort.Slice(joliet, func(i, j int) bool { return bytes.Compare(joliet[i].joliet, joliet[j].joliet) < 0 })

	// Directory records (sizes first, extents filled in once laid out).
	dot := rootSelfSU()
	dotdot := suPX(0o040555, 2)
	primaryRecs := func(self, parent uint32, selfLen uint32) [][]byte {
		recs := [][]byte{
			dirRecord(self, selfLen, true, []byte{0}, dot),
			dirRecord(parent, selfLen, true, []byte{1}, dotdot),
		}
		for _, e := range primary {
			su := append(suPX(0o100444, 1), suNM(e.name)...)
			recs = append(recs, dirRecord(e.extent, uint32(len(e.data)), false, []byte(e.primary), su))
		}
		return recs
	}
	jolietRecs := func(self, parent uint32, selfLen uint32) [][]byte {
		recs := [][]byte{
			dirRecord(self, selfLen, true, []byte{0}, nil),
			dirRecord(parent, selfLen, true, []byte{1}, nil),
		}
		for _, e := range joliet {
			recs = append(recs, dirRecord(e.extent, uint32(len(e.data)), false, e.joliet, nil))
		}
		return recs
	}
	primarySectors := dirSectors(primaryRecs(0, 0, 0))
	jolietSectors := dirSectors(jolietRecs(0, 0, 0))

	// Layout: 16 system sectors, PVD, Joliet SVD, terminator, four path
	// tables (primary L/M, Joliet L/M), the two root directories, file data.
	const (
		pvdSector = 16 + iota
		svdSector
		termSector
		lPathPrimary
		mPathPrimary
		lPathJoliet
		mPathJoliet
		firstFree
	)
	next := uint32(firstFree)
	primaryRoot := next
	next += primarySectors
	jolietRoot := next
	next += jolietSectors
	for _, e := range entries {
		e.extent = next
		next += (uint32(len(e.data)) + sectorSize - 1) / sectorSize
	}
	total := next

	img := make([]byte, int(total)*sectorSize)
	sector := func(n uint32) []byte { return img[int(n)*sectorSize : int(n+1)*sectorSize] }

	pLen, jLen := primarySectors*sectorSize, jolietSectors*sectorSize
	putDir(img, primaryRoot, primaryRecs(primaryRoot, primaryRoot, pLen))
	putDir(img, jolietRoot, jolietRecs(jolietRoot, jolietRoot, jLen))
	for _, e := range entries {
		copy(img[int(e.extent)*sectorSize:], e.data)
	}
	const pathTableSize = 10
	putPathTables(sector(lPathPrimary), sector(mPathPrimary), primaryRoot)
	putPathTables(sector(lPathJoliet), sector(mPathJoliet), jolietRoot)

	vd := func(s []byte, typ byte, joliet bool, root []byte, lpt, mpt uint32) {
		s[0] = typ
		copy(s[1:6], "CD001")
		s[6] = 1
		text := func(off, n int, v string) {
			if joliet {
				putUCS2Padded(s[off:off+n], v)
			} else {
				copy(s[off:off+n], padSpaces(v, n))
			}
		}
		text(8, 32, "LINUX")
		text(40, 32, label)
		bothEndian32(s[80:88], total)
		if joliet {
			copy(s[88:91], "%/E") // UCS-2 level 3
		}
		bothEndian16(s[120:124], 1)
		bothEndian16(s[124:128], 1)
		bothEndian16(s[128:132], sectorSize)
		bothEndian32(s[132:140], pathTableSize)
		binary.LittleEndian.PutUint32(s[140:144], lpt)
		binary.BigEndian.PutUint32(s[148:152], mpt)
		copy(s[156:190], root)
		text(190, 128, "")
		text(318, 128, "")
		text(446, 128, "")
		text(574, 128, "CALCLAB PROVISION/CLOUDINIT")
		text(702, 37, "")
		text(739, 37, "")
		text(776, 37, "")
		stamp := []byte(isoEpoch.Format("20060102150405") + "00\x00")
		copy(s[813:830], stamp)
		copy(s[830:847], stamp)
		copy(s[847:864], "0000000000000000\x00")
		copy(s[864:881], stamp)
		s[881] = 1
	}
	vd(sector(pvdSector), 1, false, dirRecord(primaryRoot, pLen, true, []byte{0}, nil), lPathPrimary, mPathPrimary)
	vd(sector(svdSector), 2, true, dirRecord(jolietRoot, jLen, true, []byte{0}, nil), lPathJoliet, mPathJoliet)
	term := sector(termSector)
	term[0] = 255
	copy(term[1:6], "CD001")
	term[6] = 1

	_, err := w.Write(img)
	return err
}

// level1Name maps name to an ISO 9660 level 1 identifier: upper-case
// d-characters, 8.3, with a version — "meta-data" becomes "META_DAT.;1".
func level1Name(name string) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	d := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if b.Len() == n {
				break
			}
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	return d(base, 8) + "." + d(ext, 3) + ";1"
}

// dirRecord encodes a directory record (ECMA-119 9.1).
func dirRecord(extent, size uint32, dir bool, id, systemUse []byte) []byte {
	n := 33 + len(id)
	if len(id)%2 == 0 {
		n++ // pad so the system use area starts on an even byte
	}
	n += len(systemUse)
	if n%2 == 1 {
		n++
	}
	if n > 255 {
		panic(fmt.Sprintf("iso: directory record for %q too long", id))
	}
	r := make([]byte, n)
	r[0] = byte(n)
	bothEndian32(r[2:10], extent)
	bothEndian32(r[10:18], size)
	t := isoEpoch
	r[18] = byte(t.Year() - 1900)
	r[19] = byte(t.Month())
	r[20] = byte(t.Day())
	r[21] = byte(t.Hour())
	r[22] = byte(t.Minute())
	r[23] = byte(t.Second())
	if dir {
		r[25] = 2
	}
	bothEndian16(r[28:32], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	off := 33 + len(id)
	if len(id)%2 == 0 {
		off++
	}
	copy(r[off:], systemUse)
	return r
}

// dirSectors is how many sectors recs take (a record never spans sectors).
func dirSectors(recs [][]byte) uint32 {
	sectors, used := uint32(1), 0
	for _, r := range recs {
		if used+len(r) > sectorSize {
			sectors++
			used = 0
		}
		used += len(r)
	}
	return sectors
}

func putDir(img []byte, first uint32, recs [][]byte) {
	off, used := int(first)*sectorSize, 0
	for _, r := range recs {
		if used+len(r) > sectorSize {
			off += sectorSize - used
			used = 0
		}
		copy(img[off:], r)
		off += len(r)
		used += len(r)
	}
}

// putPathTables writes the one-entry (root only) path tables.
func putPathTables(l, m []byte, root uint32) {
	l[0], m[0] = 1, 1 // length of directory identifier
	binary.LittleEndian.PutUint32(l[2:6], root)
	binary.BigEndian.PutUint32(m[2:6], root)
	binary.LittleEndian.PutUint16(l[6:8], 1) // parent directory number
	binary.BigEndian.PutUint16(m[6:8], 1)
	// l[8], m[8] = 0: the root's identifier; l[9], m[9]: padding.
}

// rootSelfSU is the system use area of the root's "." record: the SUSP
// indicator (SP), the POSIX attributes, and the Rock Ridge extension
// reference (ER) that tells readers (Linux: s_rock = 1) to use Rock Ridge.
func rootSelfSU() []byte {
	sp := []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0}
	const (
		id   = "RRIP_1991A"
		desc = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
		src  = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE"
	)
	er := []byte{'E', 'R', byte(8 + len(id) + len(desc) + len(src)), 1, byte(len(id)), byte(len(desc)), byte(len(src)), 1}
	er = append(er, id+desc+src...)
	out := append(sp, suPX(0o040555, 2)...)
	return append(out, er...)
}

// suPX is a Rock Ridge PX entry (RRIP 1.10 form, 36 bytes).
func suPX(mode, links uint32) []byte {
	px := make([]byte, 36)
	copy(px, "PX")
	px[2], px[3] = 36, 1
	bothEndian32(px[4:12], mode)
	bothEndian32(px[12:20], links)
	// uid and gid 0
	return px
}

// suNM is a Rock Ridge NM (alternate name) entry.
func suNM(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

func bothEndian32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

func bothEndian16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b[0:2], v)
	binary.BigEndian.PutUint16(b[2:4], v)
}

func padSpaces(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// putUCS2Padded writes s as UCS-2BE into b, padded with UCS-2 spaces.
func putUCS2Padded(b []byte, s string) {
	for i := 0; i+1 < len(b); i += 2 {
		b[i], b[i+1] = 0, ' '
	}
	copy(b, ucs2(s))
}
