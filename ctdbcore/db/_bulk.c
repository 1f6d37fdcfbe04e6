/* Recovery's per-record loops, compiled (ctdbcore.db.bulk documents each function; the
 * pure-Python versions there are the reference these must match, and
 * tests/unit/db/test_bulk.py checks that they do).
 *
 * A recovery moves every record of every database through each of these loops on
 * every node; in Python each pass costs about a microsecond per record before any
 * real work, which made a 100k-record recovery 2.5-3x as long as 4.17's.
 *
 * Formats: marshall buffers (ctdb_marshall_buffer: u32 db_id, u32 count, then per
 * record u32 length, u32 reqid, u32 keylen, u32 datalen, key, data) and TDB files
 * (Samba lib/tdb/common/tdb_private.h), both little-endian here: the module refuses to
 * load on a big-endian host, and the Python versions are used.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define LTDB_HEADER 24
#define TDB_HEADER_SIZE (32 + 9 * 4 + 25 * 4)
#define TDB_VERSION (0x26011967u + 6u)
#define TDB_MAGIC 0x26011999u
#define TDB_FREE_MAGIC (~TDB_MAGIC)
#define TDB_DEAD_MAGIC 0xFEE1DEADu
#define TDB_RECOVERY_MAGIC 0xF53BC0E7u
#define TDB_RECOVERY_INVALID_MAGIC 0u
#define TDB_FEATURE_FLAG_MUTEX 1u
#define TDB_REPLACE 1

static inline uint32_t rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline void wr32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline void wr64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* One live record of a TDB file: the key at off, the value right after it. */
struct span {
	uint64_t off;
	uint32_t keylen;
	uint32_t datalen;
};

/* The live records of a TDB file image, in file order (tdbfile.live_spans). Returns
 * 0 with *out (malloc'd, *n entries) or -1 when the file is not one this reader is
 * sure of; -2 when out of memory. */
static int tdb_spans(const unsigned char *buf, uint64_t len, struct span **out, size_t *n)
{
	static const char food[] = "TDB file\n";  /* 10 bytes with its NUL */
	uint64_t base = 0, off, end = len;
	uint32_t version, hash_size, features, mutex_size;
	size_t cap = 1024, count = 0;
	struct span *spans;

	if (len < TDB_HEADER_SIZE || memcmp(buf, food, 10) != 0)
		return -1;
	version = rd32(buf + 32);
	hash_size = rd32(buf + 36);
	features = rd32(buf + 32 + 7 * 4);
	mutex_size = rd32(buf + 32 + 8 * 4);
	if (version != TDB_VERSION || hash_size == 0)
		return -1;
	if (features & TDB_FEATURE_FLAG_MUTEX) {
		base = mutex_size;
		if (len < base + TDB_HEADER_SIZE || memcmp(buf + base, food, 10) != 0)
			return -1;
		version = rd32(buf + base + 32);
		hash_size = rd32(buf + base + 36);
		if (version != TDB_VERSION)
			return -1;
	}
	spans = malloc(cap * sizeof(*spans));
	if (spans == NULL)
		return -2;
	off = base + TDB_HEADER_SIZE + 4 * ((uint64_t)hash_size + 1);
	while (off + 24 <= end) {
		const unsigned char *r = buf + off;
		uint64_t rec_len = rd32(r + 4), key_len = rd32(r + 8), data_len = rd32(r + 12);
		uint32_t magic = rd32(r + 20);
		uint64_t body = off + 24, next = body + rec_len;

		if (next > end)
			goto unsure;
		if (magic == TDB_MAGIC) {
			if (key_len + data_len > rec_len)
				goto unsure;
			if (count == cap) {
				struct span *more = realloc(spans, 2 * cap * sizeof(*spans));
				if (more == NULL) {
					free(spans);
					return -2;
				}
				spans = more;
				cap *= 2;
			}
			spans[count].off = body;
			spans[count].keylen = (uint32_t)key_len;
			spans[count].datalen = (uint32_t)data_len;
			count++;
		} else if (magic != TDB_FREE_MAGIC && magic != TDB_DEAD_MAGIC && magic != TDB_RECOVERY_MAGIC &&
			   magic != TDB_RECOVERY_INVALID_MAGIC) {
			goto unsure;
		}
		off = next;
	}
	/* Records cover the file to its end (an expansion adds a free record). */
	if (off != end)
		goto unsure;
	*out = spans;
	*n = count;
	return 0;
unsure:
	free(spans);
	return -1;
}

/* The file open on fd, mapped read-only (no copy: the file of a big database is tens
 * of megabytes, and reading it took as long as the rest of a pull). Never a new
 * descriptor of it: closing any would drop every fcntl lock the process holds on the
 * file, libtdb's included. 0, or -1 (*len 0) for an empty or unmappable file. */
static int map_fd(int fd, const unsigned char **addr, size_t *len)
{
	struct stat st;
	void *p;

	*addr = NULL;
	*len = 0;
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
		return -1;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	*addr = p;
	*len = (size_t)st.st_size;
	return 0;
}

/* The live records of the TDB file open on fd, mapped at *addr: 0, -1 (not sure of the
 * file: nothing mapped) or -2 with a Python error. */
static int fd_spans(int fd, const unsigned char **addr, size_t *len, struct span **spans, size_t *n)
{
	int ret;

	if (map_fd(fd, addr, len) != 0)
		return -1;
	ret = tdb_spans(*addr, *len, spans, n);
	if (ret != 0) {
		munmap((void *)*addr, *len);
		*addr = NULL;
	}
	if (ret == -2)
		PyErr_NoMemory();
	return ret;
}

/* A new marshall buffer of count records and size bytes of them; *body is where the
 * first record goes. */
static PyObject *new_buffer(uint32_t db_id, uint32_t count, uint64_t size, unsigned char **body)
{
	PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 + size));

	if (out == NULL)
		return NULL;
	*body = (unsigned char *)PyBytes_AS_STRING(out);
	wr32(*body, db_id);
	wr32(*body + 4, count);
	*body += 8;
	return out;
}

/* A record's 16-byte header in a marshall buffer (reqid 0). */
static inline void put_record_header(unsigned char *p, uint32_t keylen, uint32_t datalen)
{
	wr32(p, 16 + keylen + datalen);
	wr32(p + 4, 0);
	wr32(p + 8, keylen);
	wr32(p + 12, datalen);
}

/* A marshall buffer of records [first, last) of spans, which lie in file. */
static PyObject *pack_span_batch(const unsigned char *file, const struct span *spans, size_t first, size_t last,
				 uint32_t min_value, uint32_t db_id, uint64_t size, uint32_t count)
{
	unsigned char *p;
	PyObject *out = new_buffer(db_id, count, size, &p);
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = first; i < last; i++) {
		uint32_t n = spans[i].keylen + spans[i].datalen;
		if (spans[i].datalen < min_value)
			continue;
		put_record_header(p, spans[i].keylen, spans[i].datalen);
		memcpy(p + 16, file + spans[i].off, n);
		p += 16 + n;
	}
	return out;
}

static PyObject *bulk_pull_pack(PyObject *self, PyObject *args)
{
	int fd;
	unsigned int db_id, min_value;
	unsigned long long limit;
	const unsigned char *file = NULL;
	size_t len = 0;
	struct span *spans = NULL;
	size_t n = 0, i, first = 0, total = 0;
	uint64_t size = 0;
	uint32_t count = 0;
	int sent = 0, ret;
	PyObject *list = NULL, *buf;

	if (!PyArg_ParseTuple(args, "iIIK", &fd, &db_id, &min_value, &limit))
		return NULL;
	ret = fd_spans(fd, &file, &len, &spans, &n);
	if (ret == -1)
		Py_RETURN_NONE;
	if (ret != 0)
		return NULL;
	list = PyList_New(0);
	if (list == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		if (spans[i].datalen < min_value)
			continue;
		count++;
		total++;
		size += 16 + (uint64_t)spans[i].keylen + spans[i].datalen;
		if (size >= limit) {
			buf = pack_span_batch(file, spans, first, i + 1, min_value, db_id, size, count);
			if (buf == NULL || PyList_Append(list, buf) != 0) {
				Py_XDECREF(buf);
				goto fail;
			}
			Py_DECREF(buf);
			sent = 1;
			first = i + 1;
			size = 0;
			count = 0;
		}
	}
	if (count || !sent) {
		buf = pack_span_batch(file, spans, first, n, min_value, db_id, size, count);
		if (buf == NULL || PyList_Append(list, buf) != 0) {
			Py_XDECREF(buf);
			goto fail;
		}
		Py_DECREF(buf);
	}
	free(spans);
	munmap((void *)file, len);
	return Py_BuildValue("(nN)", (Py_ssize_t)total, list);
fail:
	free(spans);
	munmap((void *)file, len);
	Py_XDECREF(list);
	return NULL;
}

/* One record of a marshall buffer of n bytes, at *off: its key and value offsets and
 * lengths, *off moved past it. 0, or why not: the buffer ends inside the record's
 * header (WALK_ENDS_INSIDE) or inside its key or value (WALK_PAST_END). */
enum { WALK_OK, WALK_ENDS_INSIDE, WALK_PAST_END };

struct rec {
	uint64_t k0, keylen, v0, datalen;
};

static inline int next_record(const unsigned char *b, uint64_t n, uint64_t *off, struct rec *r)
{
	if (*off + 16 > n)
		return WALK_ENDS_INSIDE;
	r->keylen = rd32(b + *off + 8);
	r->datalen = rd32(b + *off + 12);
	r->k0 = *off + 16;
	r->v0 = r->k0 + r->keylen;
	if (r->v0 + r->datalen > n)
		return WALK_PAST_END;
	*off = r->v0 + r->datalen;
	return WALK_OK;
}

/* Whether the copy arriving (rsn_in) replaces the one merged so far (record.keeps_existing,
 * negated): a higher RSN wins; on equal RSNs the leader's own copy stays. */
static inline int replaces(const unsigned char *in, Py_ssize_t in_len, PyObject *old, uint32_t leader)
{
	const unsigned char *o = (const unsigned char *)PyBytes_AS_STRING(old);
	uint64_t rsn_in, rsn_old;

	if (in_len < 12)
		return 0;
	if (PyBytes_GET_SIZE(old) < 12)
		return 1;
	rsn_in = rd64(in);
	rsn_old = rd64(o);
	return !(rsn_in < rsn_old || (rsn_in == rsn_old && rd32(o + 8) != leader));
}

/* merged[key] = value unless newest says the copy there stays. 0, or -1 with an error. */
static int merge_one(PyObject *merged, const unsigned char *key, Py_ssize_t keylen, const unsigned char *value,
		     Py_ssize_t datalen, int newest, uint32_t leader)
{
	PyObject *k = PyBytes_FromStringAndSize((const char *)key, keylen), *v, *old;
	int ret;

	if (k == NULL)
		return -1;
	if (newest) {
		old = PyDict_GetItemWithError(merged, k);
		if (old == NULL && PyErr_Occurred()) {
			Py_DECREF(k);
			return -1;
		}
		if (old != NULL && (!PyBytes_Check(old) || !replaces(value, datalen, old, leader))) {
			Py_DECREF(k);
			return 0;
		}
	}
	v = PyBytes_FromStringAndSize((const char *)value, datalen);
	if (v == NULL) {
		Py_DECREF(k);
		return -1;
	}
	ret = PyDict_SetItem(merged, k, v);
	Py_DECREF(k);
	Py_DECREF(v);
	return ret;
}

static PyObject *bulk_merge_newest(PyObject *self, PyObject *args)
{
	Py_buffer view;
	PyObject *merged;
	unsigned int leader;
	const unsigned char *b;
	uint64_t n, off = 8;
	uint32_t count, i;

	if (!PyArg_ParseTuple(args, "y*O!I", &view, &PyDict_Type, &merged, &leader))
		return NULL;
	b = view.buf;
	n = (uint64_t)view.len;
	if (n < 8) {
		PyErr_SetString(PyExc_ValueError, "marshall buffer shorter than its header");
		goto fail;
	}
	count = rd32(b + 4);
	for (i = 0; i < count; i++) {
		struct rec r;
		int why = next_record(b, n, &off, &r);
		if (why == WALK_ENDS_INSIDE) {
			PyErr_Format(PyExc_ValueError, "marshall buffer ends inside record %u", i);
			goto fail;
		}
		if (why == WALK_PAST_END) {
			PyErr_Format(PyExc_ValueError, "record %u runs past the end of the buffer", i);
			goto fail;
		}
		if (merge_one(merged, b + r.k0, (Py_ssize_t)r.keylen, b + r.v0, (Py_ssize_t)r.datalen, 1, leader) != 0)
			goto fail;
	}
	PyBuffer_Release(&view);
	return PyLong_FromUnsignedLong(count);
fail:
	PyBuffer_Release(&view);
	return NULL;
}

static PyObject *bulk_merge_file(PyObject *self, PyObject *args)
{
	int fd, newest, ret;
	PyObject *merged;
	unsigned int leader, min_value;
	const unsigned char *file = NULL;
	size_t len = 0;
	struct span *spans = NULL;
	size_t n = 0, i, done = 0;

	if (!PyArg_ParseTuple(args, "iO!IIp", &fd, &PyDict_Type, &merged, &leader, &min_value, &newest))
		return NULL;
	ret = fd_spans(fd, &file, &len, &spans, &n);
	if (ret == -1)
		Py_RETURN_NONE;
	if (ret != 0)
		return NULL;
	for (i = 0; i < n; i++) {
		const unsigned char *key = file + spans[i].off;
		if (spans[i].datalen < min_value)
			continue;
		if (merge_one(merged, key, spans[i].keylen, key + spans[i].keylen, spans[i].datalen, newest, leader) != 0) {
			free(spans);
			munmap((void *)file, len);
			return NULL;
		}
		done++;
	}
	free(spans);
	munmap((void *)file, len);
	return PyLong_FromSize_t(done);
}

/* One buffer of the records of merged from *pos on, longer than skip_upto bytes, until
 * the buffer reaches limit bytes. *pos is left after its last record. */
static PyObject *pack_dict_batch(PyObject *merged, Py_ssize_t *pos, uint32_t db_id, Py_ssize_t skip_upto,
				 int64_t claim, uint32_t add_flags, uint64_t limit, uint32_t *counted, int *more)
{
	Py_ssize_t p = *pos, start = *pos;
	PyObject *k, *v, *out;
	uint64_t size = 0;
	uint32_t count = 0;
	unsigned char *w;

	*more = 0;
	while (PyDict_Next(merged, &p, &k, &v)) {
		Py_ssize_t vl;
		if (!PyBytes_Check(k) || !PyBytes_Check(v)) {
			PyErr_SetString(PyExc_TypeError, "records must be bytes");
			return NULL;
		}
		vl = PyBytes_GET_SIZE(v);
		if (vl <= skip_upto)
			continue;
		if (claim >= 0 && vl < LTDB_HEADER) {
			PyErr_SetString(PyExc_ValueError, "record value shorter than its header");
			return NULL;
		}
		count++;
		size += 16 + (uint64_t)PyBytes_GET_SIZE(k) + (uint64_t)vl;
		if (size >= limit) {
			*more = 1;
			break;
		}
	}
	*pos = p;
	out = new_buffer(db_id, count, size, &w);
	if (out == NULL)
		return NULL;
	p = start;
	for (uint32_t i = 0; i < count;) {
		Py_ssize_t kl, vl;
		const unsigned char *vs;
		if (!PyDict_Next(merged, &p, &k, &v)) {
			Py_DECREF(out);
			PyErr_SetString(PyExc_RuntimeError, "dictionary changed during packing");
			return NULL;
		}
		vl = PyBytes_GET_SIZE(v);
		if (vl <= skip_upto)
			continue;
		kl = PyBytes_GET_SIZE(k);
		vs = (const unsigned char *)PyBytes_AS_STRING(v);
		put_record_header(w, (uint32_t)kl, (uint32_t)vl);
		memcpy(w + 16, PyBytes_AS_STRING(k), kl);
		w += 16 + kl;
		memcpy(w, vs, vl);
		if (claim >= 0) {
			wr32(w + 8, (uint32_t)claim);
			wr32(w + 16, rd32(vs + 16) | add_flags);
		}
		w += vl;
		i++;
	}
	*counted += count;
	return out;
}

static PyObject *bulk_pack_push(PyObject *self, PyObject *args)
{
	PyObject *merged, *list, *buf;
	unsigned int db_id, add_flags;
	Py_ssize_t skip_upto;
	long long claim;
	unsigned long long limit;
	Py_ssize_t pos = 0;
	uint32_t total = 0;
	int more = 1, sent = 0;

	if (!PyArg_ParseTuple(args, "IO!nLIK", &db_id, &PyDict_Type, &merged, &skip_upto, &claim, &add_flags, &limit))
		return NULL;
	list = PyList_New(0);
	if (list == NULL)
		return NULL;
	while (more) {
		uint32_t before = total;
		buf = pack_dict_batch(merged, &pos, db_id, skip_upto, claim, add_flags, limit, &total, &more);
		if (buf == NULL)
			goto fail;
		/* pack_limited: a last batch only if it holds records or none was sent */
		if (total > before || !sent) {
			if (PyList_Append(list, buf) != 0) {
				Py_DECREF(buf);
				goto fail;
			}
			sent = 1;
		}
		Py_DECREF(buf);
	}
	return Py_BuildValue("(IN)", total, list);
fail:
	Py_DECREF(list);
	return NULL;
}

typedef struct {
	unsigned char *dptr;
	size_t dsize;
} TDB_DATA;

typedef int (*tdb_store_fn)(void *tdb, TDB_DATA key, TDB_DATA dbuf, int flag);

enum { STORE_OK, STORE_SHORT, STORE_ENDS_INSIDE, STORE_PAST_END, STORE_BAD_RECORD, STORE_FAILED };

static PyObject *bulk_store_buffer(PyObject *self, PyObject *args)
{
	unsigned long long fn_addr, handle;
	Py_buffer view;
	long long mine;
	unsigned int ro_flags;
	tdb_store_fn store;
	const unsigned char *b;
	unsigned char *scratch = NULL;
	size_t scratch_len = 0;
	uint64_t n, off = 8;
	uint32_t count = 0, i = 0;
	int code = STORE_OK, ret = 0;

	if (!PyArg_ParseTuple(args, "KKy*LI", &fn_addr, &handle, &view, &mine, &ro_flags))
		return NULL;
	store = (tdb_store_fn)(uintptr_t)fn_addr;
	b = view.buf;
	n = (uint64_t)view.len;
	if (n < 8) {
		code = STORE_SHORT;
		goto out;
	}
	count = rd32(b + 4);
	for (i = 0; i < count; i++) {
		uint64_t keylen, datalen, v0, rsn;
		uint32_t dmaster, flags;
		TDB_DATA key, value;
		struct rec r;
		int why = next_record(b, n, &off, &r);

		if (why != WALK_OK) {
			code = why == WALK_ENDS_INSIDE ? STORE_ENDS_INSIDE : STORE_PAST_END;
			goto out;
		}
		keylen = r.keylen;
		datalen = r.datalen;
		v0 = r.v0;
		if (datalen < LTDB_HEADER) {
			code = STORE_BAD_RECORD;
			goto out;
		}
		key.dptr = (unsigned char *)b + r.k0;
		key.dsize = keylen;
		rsn = rd64(b + v0);
		dmaster = rd32(b + v0 + 8);
		flags = rd32(b + v0 + 16);
		if ((int64_t)dmaster == mine || (flags & ro_flags)) {
			/* the header changes: a copy of the record with the new one */
			if (scratch_len < datalen) {
				unsigned char *more = realloc(scratch, datalen);
				if (more == NULL) {
					free(scratch);
					PyBuffer_Release(&view);
					return PyErr_NoMemory();
				}
				scratch = more;
				scratch_len = datalen;
			}
			memcpy(scratch, b + v0, datalen);
			if ((int64_t)dmaster == mine)
				wr64(scratch, rsn + 1);
			wr32(scratch + 16, flags & ~ro_flags);
			value.dptr = scratch;
		} else {
			value.dptr = (unsigned char *)b + v0;
		}
		value.dsize = datalen;
		ret = store((void *)(uintptr_t)handle, key, value, TDB_REPLACE);
		if (ret != 0) {
			code = STORE_FAILED;
			goto out;
		}
	}
out:
	free(scratch);
	PyBuffer_Release(&view);
	return Py_BuildValue("(iIi)", code, i, ret);
}

static PyMethodDef bulk_methods[] = {
	{"pull_pack", bulk_pull_pack, METH_VARARGS,
	 "pull_pack(fd, db_id, min_value, limit) -> (count, [buffer]) | None"},
	{"merge_newest", bulk_merge_newest, METH_VARARGS, "merge_newest(buffer, merged, leader) -> count"},
	{"merge_file", bulk_merge_file, METH_VARARGS,
	 "merge_file(fd, merged, leader, min_value, newest) -> count | None"},
	{"pack_push", bulk_pack_push, METH_VARARGS,
	 "pack_push(db_id, merged, skip_upto, claim, add_flags, limit) -> (count, [buffer])"},
	{"store_buffer", bulk_store_buffer, METH_VARARGS,
	 "store_buffer(tdb_store_address, tdb_handle, buffer, data_master, ro_flags) -> (code, index, tdb_ret)"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef bulk_module = {
	PyModuleDef_HEAD_INIT, "_bulk", "Recovery's per-record loops (see ctdbcore.db.bulk).", -1, bulk_methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bulk(void)
{
	const uint32_t one = 1;
	if (*(const unsigned char *)&one != 1) {
		PyErr_SetString(PyExc_ImportError, "_bulk reads little-endian formats in place");
		return NULL;
	}
	return PyModule_Create(&bulk_module);
}
