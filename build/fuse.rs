//! Build-time fusion of element-wise chains in the Burn code that burn-onnx generates.
//!
//! PP-OCRv4's backbone follows nearly every convolution with a learnable affine (`k·x + b`,
//! scalar constants), a hard-swish written out as `x · clamp(x + 3, 0, 6) / 6`, and another
//! affine: eight tensor passes, each allocating, each on one thread in Burn's CPU backend.
//! This pass finds such chains — statements whose only tensor input is one variable and whose
//! other operands are scalar constants — and replaces each with one call to
//! `crate::gpu::fused::map`, which evaluates the whole chain per element in one parallel pass
//! on the CPU backend and runs the original statements, unchanged, on any other device.
//!
//! The rewrite is purely syntactic and conservative: a statement it does not recognise is left
//! as it was, and a value used by anything else than a fused statement is materialised under
//! its original name. The ONNX files themselves are not touched.

use std::collections::{HashMap, HashSet};

/// Rewrites every `fn forward` body of a generated model source: element-wise chains fused,
/// and convolutions routed through `crate::gpu::depthwise::conv2d` (which computes the
/// depthwise ones on the CPU backend and calls the layer's own `forward` otherwise).
pub fn fuse_source(src: &str) -> String {
    route_convolutions(&fuse_chains(src))
}

/// `self.conv2dN.forward(x)` becomes `crate::gpu::depthwise::conv2d(&self.conv2dN, x)`.
fn route_convolutions(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("self.conv2d") {
        let after = &rest[at + "self.".len()..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let (name, tail) = after.split_at(name_len);
        out.push_str(&rest[..at]);
        match tail.strip_prefix(".forward(") {
            Some(args) => {
                out.push_str(&format!("crate::gpu::depthwise::conv2d(&self.{name}, "));
                rest = args;
            }
            None => {
                out.push_str(&format!("self.{name}"));
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Fuses the scalar element-wise chains of every `fn forward` body.
fn fuse_chains(src: &str) -> String {
    let scalars = scalar_constants(src);
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("pub fn forward(") {
        let Some(open) = rest[at..].find('{').map(|o| at + o) else {
            break;
        };
        let Some(close) = matching_brace(rest, open) else {
            break;
        };
        out.push_str(&rest[..=open]);
        out.push_str(&fuse_body(&rest[open + 1..close], &scalars));
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Names of the generated one-element constants (`constantN` fields of shape `[1]`).
fn scalar_constants(src: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let marker = ": burn::module::Param<Tensor<1>> = burn::module::Param::uninitialized(";
    let mut rest = src;
    while let Some(at) = rest.find(marker) {
        let name = rest[..at]
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string();
        let after = &rest[at + marker.len()..];
        let end = after.find("\n        let ").unwrap_or(after.len());
        let decl: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if decl.ends_with("false,[1].into(),);") {
            found.insert(name);
        }
        rest = after;
    }
    found
}

fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Statements of a body, split on `;` outside brackets; the tail expression is the last item.
fn statements(body: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in body.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ';' if depth == 0 => {
                parts.push(body[start..=i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(body[start..].to_string());
    parts
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// An element-wise statement: `let target = a OP b;` or `let target = a.clamp(lo, hi);`.
#[derive(Clone, Debug)]
enum Elem {
    Binary(Op, String, String),
    Clamp(String, String, String),
}

fn operand(s: &str) -> Option<String> {
    let s = s.strip_suffix(".clone()").unwrap_or(s);
    let s = match s.find(".unsqueeze_dims(&[") {
        Some(at) if s.ends_with("])") => &s[..at],
        _ => s,
    };
    let s = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s);
    (!s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')).then(|| s.to_string())
}

fn float_literal(s: &str) -> Option<String> {
    let v = s.strip_suffix("f64")?;
    v.parse::<f64>().ok()?;
    Some(v.to_string())
}

fn parse_elem(expr: &str) -> Option<Elem> {
    let e: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = e.strip_suffix(')')?;
    for (name, op) in [
        (".add(", Op::Add),
        (".sub(", Op::Sub),
        (".mul(", Op::Mul),
        (".div(", Op::Div),
    ] {
        if let Some(at) = inner.rfind(name) {
            let (a, b) = (&inner[..at], &inner[at + name.len()..]);
            if let (Some(a), Some(b)) = (operand(a), operand(b)) {
                return Some(Elem::Binary(op, a, b));
            }
        }
    }
    let at = inner.rfind(".clamp(")?;
    let a = operand(&inner[..at])?;
    let (lo, hi) = inner[at + 7..].split_once(',')?;
    let (lo, hi) = (float_literal(lo)?, float_literal(hi)?);
    (lo.parse::<f64>().ok()? <= hi.parse::<f64>().ok()?).then_some(Elem::Clamp(a, lo, hi))
}

fn let_target(stmt: &str) -> Option<(String, String)> {
    let s = stmt.trim().strip_prefix("let ")?.strip_suffix(';')?;
    let (name, expr) = s.split_once(" = ")?;
    let name = name.trim();
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then(|| (name.to_string(), expr.trim().to_string()))
}

fn identifiers(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
}

fn fuse_body(body: &str, scalars: &HashSet<String>) -> String {
    let stmts = statements(body);
    // Variables holding a scalar constant: `let constantN_out1 = self.constantN.val();`
    let mut consts = HashSet::new();
    let mut elems: HashMap<usize, (String, Elem)> = HashMap::new();
    for (i, s) in stmts.iter().enumerate() {
        let Some((name, expr)) = let_target(s) else {
            continue;
        };
        if let Some(field) = expr
            .strip_prefix("self.")
            .and_then(|e| e.strip_suffix(".val()"))
            && scalars.contains(field)
        {
            consts.insert(name);
        } else if let Some(elem) = parse_elem(&expr) {
            elems.insert(i, (name, elem));
        }
    }

    // Where each variable is used, by statement index.
    let mut uses: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, s) in stmts.iter().enumerate() {
        let body = match let_target(s) {
            Some((_, expr)) => expr,
            None => s.clone(),
        };
        for id in identifiers(&body) {
            uses.entry(id.to_string()).or_default().push(i);
        }
    }

    // Fixpoint: an element-wise statement joins its operand's chain when all its tensor operands
    // share one root; a chain value used elsewhere is materialised and becomes a root itself.
    let mut materialised: HashSet<String> = HashSet::new();
    let (roots, fused) = loop {
        let mut roots: HashMap<String, String> = HashMap::new();
        let mut fused: HashSet<usize> = HashSet::new();
        for i in 0..stmts.len() {
            let Some((name, elem)) = elems.get(&i) else {
                continue;
            };
            let operands: Vec<&String> = match elem {
                Elem::Binary(_, a, b) => vec![a, b],
                Elem::Clamp(a, _, _) => vec![a],
            };
            let tensor_roots: HashSet<String> = operands
                .iter()
                .filter(|o| !consts.contains(o.as_str()))
                .map(|o| match roots.get(o.as_str()) {
                    Some(r) if !materialised.contains(o.as_str()) => r.clone(),
                    _ => o.to_string(),
                })
                .collect();
            if tensor_roots.len() == 1 {
                roots.insert(name.clone(), tensor_roots.into_iter().next().unwrap());
                fused.insert(i);
            }
        }
        let mut grew = false;
        for i in &fused {
            let name = &elems[i].0;
            let outside = uses
                .get(name)
                .into_iter()
                .flatten()
                .any(|u| !fused.contains(u) || roots.get(&elems[u].0) != roots.get(name));
            if outside && materialised.insert(name.clone()) {
                grew = true;
            }
        }
        if !grew {
            break (roots, fused);
        }
    };

    let mut out = String::with_capacity(body.len());
    for (i, s) in stmts.iter().enumerate() {
        if !fused.contains(&i) {
            out.push_str(s);
            continue;
        }
        let name = &elems[&i].0;
        if !materialised.contains(name) {
            continue; // evaluated inside the chain that consumes it
        }
        out.push_str(&emit_chain(
            name,
            &stmts,
            &elems,
            &consts,
            &materialised,
            &roots,
        ));
    }
    out
}

/// `let name = crate::gpu::fused::map(root, &[consts], |x, k| ..., |root| { original });`
fn emit_chain(
    name: &str,
    stmts: &[String],
    elems: &HashMap<usize, (String, Elem)>,
    consts: &HashSet<String>,
    materialised: &HashSet<String>,
    roots: &HashMap<String, String>,
) -> String {
    let root = roots[name].as_str();
    // The chain's statements: walk back from `name` through operands that are neither the root
    // nor materialised elsewhere.
    let index: HashMap<&str, usize> = elems.iter().map(|(i, (n, _))| (n.as_str(), *i)).collect();
    let mut members: Vec<usize> = Vec::new();
    let mut stack = vec![name.to_string()];
    let mut seen = HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v.clone()) {
            continue;
        }
        let i = index[v.as_str()];
        members.push(i);
        let operands = match &elems[&i].1 {
            Elem::Binary(_, a, b) => vec![a.clone(), b.clone()],
            Elem::Clamp(a, _, _) => vec![a.clone()],
        };
        for o in operands {
            let inner = o != root
                && !consts.contains(&o)
                && !materialised.contains(&o)
                && roots.contains_key(&o);
            if inner {
                stack.push(o);
            }
        }
    }
    members.sort_unstable();

    let mut used_consts: Vec<String> = Vec::new();
    let mut scalar_code = String::new();
    let value = |o: &String, used: &mut Vec<String>| -> String {
        if consts.contains(o) {
            let k = used.iter().position(|c| c == o).unwrap_or_else(|| {
                used.push(o.clone());
                used.len() - 1
            });
            format!("k[{k}]")
        } else if o == root {
            "x".to_string()
        } else {
            o.clone()
        }
    };
    for &i in &members {
        let (target, elem) = &elems[&i];
        let code = match elem {
            Elem::Binary(op, a, b) => {
                let sym = match op {
                    Op::Add => "+",
                    Op::Sub => "-",
                    Op::Mul => "*",
                    Op::Div => "/",
                };
                let (a, b) = (value(a, &mut used_consts), value(b, &mut used_consts));
                format!("{a} {sym} {b}")
            }
            Elem::Clamp(a, lo, hi) => {
                let a = value(a, &mut used_consts);
                format!("{a}.clamp({lo}f32, {hi}f32)")
            }
        };
        scalar_code.push_str(&format!("let {target} = {code}; "));
    }
    scalar_code.push_str(name);

    // The root is consumed by value unless something outside this chain still needs it.
    let root_needed_elsewhere = stmts.iter().enumerate().any(|(i, s)| {
        !members.contains(&i) && {
            let text = let_target(s).map(|(_, e)| e).unwrap_or_else(|| s.clone());
            identifiers(&text).any(|id| id == root)
        }
    });
    let root_arg = if root_needed_elsewhere {
        format!("{root}.clone()")
    } else {
        root.to_string()
    };
    let k_list = used_consts
        .iter()
        .map(|c| format!("{c}.clone()"))
        .collect::<Vec<_>>()
        .join(", ");
    let reclone = used_consts
        .iter()
        .map(|c| format!("let {c} = {c}.clone(); "))
        .collect::<String>();
    let fallback = members
        .iter()
        .map(|&i| stmts[i].trim().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "\n        let {name} = crate::gpu::fused::map({root_arg}, &[{k_list}], \
         |x: f32, k: &[f32]| -> f32 {{ {scalar_code} }}, \
         |{root}| {{ {reclone}{fallback} {name} }});"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
        let constant1: burn::module::Param<Tensor<1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<1>::zeros([1], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [1].into(),
        );
        let constant2: burn::module::Param<Tensor<1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<1>::zeros([1], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [1].into(),
        );
        let constant3: burn::module::Param<Tensor<1>> = burn::module::Param::uninitialized(
            burn::module::ParamId::new(),
            move |device, _require_grad| Tensor::<1>::zeros([8], (device, burn::tensor::DType::F32)),
            device.clone(),
            false,
            [8].into(),
        );
    }
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let conv1_out1 = self.conv1.forward(x);
        let constant1_out1 = self.constant1.val();
        let mul1_out1 = (constant1_out1)
            .unsqueeze_dims(&[0isize, 1isize, 2isize])
            .mul(conv1_out1);
        let constant2_out1 = self.constant2.val();
        let add1_out1 = mul1_out1
            .clone()
            .add((constant2_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let clip1_out1 = add1_out1.clamp(0f64, 6f64);
        let mul2_out1 = mul1_out1.mul(clip1_out1);
        let constant3_out1 = self.constant3.val();
        let mul3_out1 = mul2_out1.clone().mul((constant3_out1).unsqueeze_dims(&[0isize, 1isize, 2isize]));
        let add2_out1 = mul2_out1.add(mul3_out1);
        add2_out1
    }
"#;

    #[test]
    fn finds_scalar_constants_only() {
        let s = scalar_constants(SRC);
        assert!(s.contains("constant1") && s.contains("constant2"));
        assert!(!s.contains("constant3"), "an [8] constant is not a scalar");
    }

    #[test]
    fn fuses_a_chain_and_materialises_shared_values() {
        let out = fuse_source(SRC);
        // mul1..mul2 form one chain rooted at the convolution output; mul2 is materialised
        // because a non-fusable statement (broadcast by an [8] constant) uses it.
        assert_eq!(out.matches("crate::gpu::fused::map(").count(), 1, "{out}");
        assert!(out.contains("let mul2_out1 = crate::gpu::fused::map(conv1_out1, &[constant1_out1.clone(), constant2_out1.clone()]"), "{out}");
        assert!(out.contains("let mul1_out1 = k[0] * x; let add1_out1 = mul1_out1 + k[1]; let clip1_out1 = add1_out1.clamp(0f32, 6f32); let mul2_out1 = mul1_out1 * clip1_out1; mul2_out1"), "{out}");
        // Untouched: the broadcast by a non-scalar constant and the residual add.
        assert!(
            out.contains("let mul3_out1 = mul2_out1.clone().mul("),
            "{out}"
        );
        assert!(
            out.contains("let add2_out1 = mul2_out1.add(mul3_out1);"),
            "{out}"
        );
        // Statements only used inside the chain are gone from the body.
        assert!(!out.contains("\n        let clip1_out1"), "{out}");
    }

    #[test]
    fn routes_convolutions_through_the_depthwise_kernel() {
        let src = "pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {\n let conv2d7_out1 = self.conv2d7.forward(x);\n let y = self.conv2d_extra;\n conv2d7_out1\n}";
        let out = fuse_source(src);
        assert!(
            out.contains("let conv2d7_out1 = crate::gpu::depthwise::conv2d(&self.conv2d7, x);"),
            "{out}"
        );
        // A field that is not called stays as it was.
        assert!(out.contains("let y = self.conv2d_extra;"), "{out}");
    }

    #[test]
    fn leaves_unrecognised_code_alone() {
        // Two different tensors: a residual add, not a chain.
        let src = "pub fn forward(&self, x: Tensor<2>, y: Tensor<2>) -> Tensor<2> {\n let a = x.add(y);\n a\n}";
        assert_eq!(fuse_source(src), src);
    }
}
