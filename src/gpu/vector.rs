//! Hot CPU loops compiled for the widest vector instructions the machine has. The crate is
//! built for the baseline x86-64 instruction set (16-byte vectors); [`vectorised!`] defines a
//! function that runs its body, an `#[inline(always)]` function, inside a copy compiled for
//! AVX-512 or AVX2 when the CPU has them (chosen at run time), and as it is anywhere else.
//! The arithmetic is the body's own (Rust never fuses a multiply and an add on its own), so
//! the results do not depend on which copy ran.

/// `vectorised! { fn name(args) -> R = body; }` defines `name`, which calls `body` (an
/// `#[inline(always)]` function of the same arguments) compiled for the CPU's widest vector
/// instructions.
macro_rules! vectorised {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident;) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use vectorised;

#[cfg(test)]
mod tests {
    #[inline(always)]
    fn weighted_sum(values: &[f32]) -> f32 {
        values.iter().fold(0f32, |acc, x| acc + x * 1.0001)
    }

    vectorised! {
        fn sum(values: &[f32]) -> f32 = weighted_sum;
    }

    #[test]
    fn the_result_is_the_body_s_whichever_instructions_ran() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.37 - 91.0).collect();
        assert_eq!(sum(&values).to_bits(), weighted_sum(&values).to_bits());
    }
}
