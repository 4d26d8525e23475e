//! The few reads of the compiled schema yang2 has no safe call for (enum
//! members, decimal64 fraction digits, ranges, leaf-list defaults, a leaf's
//! default: yang2's `default_value_canonical` dereferences null without one).
//! Build time only; part of build/typed.rs.

use yang2::ffi;
use yang2::schema::{SchemaLeafType, SchemaNode};

unsafe fn array_len<T>(ptr: *const T) -> usize {
    if ptr.is_null() {
        0
    } else {
        // libyang sized arrays keep their length (LY_ARRAY_COUNT_TYPE) just before.
        unsafe { (ptr as *const u64).offset(-1).read() as usize }
    }
}

unsafe fn text(ptr: *const std::os::raw::c_char) -> String {
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

pub fn enum_members(ty: &SchemaLeafType<'_>) -> Vec<String> {
    unsafe {
        let raw = ty.as_raw() as *const ffi::lysc_type_enum;
        let items = (*raw).enums;
        (0..array_len(items))
            .map(|i| text((*items.add(i)).name))
            .collect()
    }
}

pub fn fraction_digits(ty: &SchemaLeafType<'_>) -> u8 {
    unsafe { (*(ty.as_raw() as *const ffi::lysc_type_dec)).fraction_digits }
}

/// Ranges (min, max) of an integer or decimal64 type (decimal64 scaled).
pub fn ranges(ty: &SchemaLeafType<'_>, unsigned: bool) -> Vec<(i128, i128)> {
    unsafe {
        let range = if ty.base_type() == yang2::schema::DataValueType::Dec64 {
            (*(ty.as_raw() as *const ffi::lysc_type_dec)).range
        } else {
            (*(ty.as_raw() as *const ffi::lysc_type_num)).range
        };
        if range.is_null() {
            return Vec::new();
        }
        let parts = (*range).parts;
        (0..array_len(parts))
            .map(|i| {
                let p = *parts.add(i);
                if unsigned {
                    (
                        p.__bindgen_anon_1.min_u64 as i128,
                        p.__bindgen_anon_2.max_u64 as i128,
                    )
                } else {
                    (
                        p.__bindgen_anon_1.min_64 as i128,
                        p.__bindgen_anon_2.max_64 as i128,
                    )
                }
            })
            .collect()
    }
}

pub fn leaf_list_defaults(node: &SchemaNode<'_>) -> Vec<String> {
    unsafe {
        let raw = node.as_raw() as *const ffi::lysc_node_leaflist;
        let ctx = (*node.module().as_raw()).ctx;
        let dflts = (*raw).dflts;
        (0..array_len(dflts))
            .map(|i| {
                let value = *dflts.add(i);
                let mut canonical = (*value)._canonical;
                if canonical.is_null() {
                    canonical = ffi::lyd_value_get_canonical(ctx, value);
                }
                text(canonical)
            })
            .collect()
    }
}

/// Default of a leaf (its own or its typedef's), canonical.
pub fn leaf_default(node: &SchemaNode<'_>) -> Option<String> {
    unsafe {
        let value = (*(node.as_raw() as *const ffi::lysc_node_leaf)).dflt;
        if value.is_null() {
            return None;
        }
        let mut canonical = (*value)._canonical;
        if canonical.is_null() {
            canonical = ffi::lyd_value_get_canonical((*node.module().as_raw()).ctx, value);
        }
        Some(text(canonical))
    }
}

pub fn min_elements(node: &SchemaNode<'_>) -> u32 {
    unsafe { (*(node.as_raw() as *const ffi::lysc_node_leaflist)).min }
}
