// CRC32C (Castagnoli, RFC 4960 Appendix B), for the PROXY v2 PP2_TYPE_CRC32C
// TLV. OpenSSL has no CRC32C; a table-driven byte loop is plenty for a header
// of a few hundred bytes per connection.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mf {

// The CRC of <n> bytes (initial value and final xor 0xFFFFFFFF, reflected
// polynomial 0x82F63B78): crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);

}  // namespace mf
